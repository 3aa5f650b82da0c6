#!/usr/bin/env bash
# Five seeds, in one program each (--config.num_replicas=5), for the
# comparisons of docs/results/seeds.md: the adding problem at T=100 with the
# LSTM, GRU and tanh RNN, and copying strings with the source read forwards
# and reversed. Prints each study's mean +- sd table at the end.
#   bash experiments/seed_studies.sh                 # every study
#   STUDIES="copy copy_rev" bash experiments/seed_studies.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ROOT=${ROOT:-workdirs/seeds}
K=${K:-5}
mkdir -p "$ROOT"

declare -A CMD=(
  [adding_lstm_100]="experiments.adding --config.cell=lstm --config.seq_len=100"
  [adding_gru_100]="experiments.adding --config.cell=gru --config.seq_len=100"
  [adding_rnn_100]="experiments.adding --config.cell=rnn --config.seq_len=100"
  [copy]="experiments.reversal --config.copy=True"
  [copy_rev]="experiments.reversal --config.copy=True --config.reverse_source=True"
)
STUDIES=${STUDIES:-"adding_lstm_100 adding_gru_100 adding_rnn_100 copy copy_rev"}

for study in $STUDIES; do
  [[ -n "${CMD[$study]:-}" ]] || { echo "unknown study $study" >&2; exit 2; }
  echo "== $study: $PY -m ${CMD[$study]} --config.num_replicas=$K"
  # shellcheck disable=SC2086
  $PY -m ${CMD[$study]} --workdir="$ROOT/$study" --config.num_replicas="$K" \
      --config.progress_bar=False > "$ROOT/$study.log" 2>&1
done
# shellcheck disable=SC2086
$PY -m experiments.report $(for s in $STUDIES; do echo "$ROOT/$s"; done)
