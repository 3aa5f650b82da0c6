#!/usr/bin/env bash
# The bidirectional study (Schuster & Paliwal 1997, section IV) on UPOS tagging:
# every variant x treebank x seed of experiments/configs/tagging.py's
# TREEBANK_study_VARIANT configs, at most JOBS runs at a time, then a table.
#
#   bash experiments/bidirectional_study.sh              # seed 0
#   SEEDS="0 1 2" JOBS=2 bash experiments/bidirectional_study.sh
#
# Variants: forward, backward, delay1, delay2 (forward, word t tagged after
# reading t + 1 / t + 2), bidirectional; word-level params matched (the
# config's docstring). Runs go to workdirs/study_<treebank>_<variant>_s<seed>
# (WORKDIRS to change the folder), each with its log as run.log; a finished
# run is skipped and an interrupted one resumes. At the end: the parameter
# counts, `python -m experiments.report` over every workdir, and test
# accuracy per variant and treebank (mean, sd and n over seeds).
#
# Environment: SEEDS (default "0"), JOBS (default 2), TREEBANKS (default
# "ud_he ud_tr"), VARIANTS (default all five), PYTHON (default .venv/bin/python
# if present, else python), WORKDIRS (default workdirs), EXTRA (more flags for
# every run, e.g. EXTRA="--config.num_train_steps=100" for a quick try).
set -euo pipefail

cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-0}
JOBS=${JOBS:-2}
TREEBANKS=${TREEBANKS:-"ud_he ud_tr"}
VARIANTS=${VARIANTS:-"forward backward delay1 delay2 bidirectional"}
WORKDIRS=${WORKDIRS:-workdirs}
EXTRA=${EXTRA:-}
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
if ! [[ "$JOBS" =~ ^[1-9][0-9]*$ ]]; then
  echo "error: JOBS: expected a positive integer, got '$JOBS'" >&2
  exit 2
fi
for seed in $SEEDS; do
  if ! [[ "$seed" =~ ^[0-9]+$ ]]; then
    echo "error: SEEDS: expected integers >= 0, got '$seed'" >&2
    exit 2
  fi
done
mkdir -p "$WORKDIRS"

workdir_of() {  # treebank variant seed
  echo "$WORKDIRS/study_${1#ud_}_$2_s$3"
}

run_one() {  # treebank variant seed
  local workdir
  workdir=$(workdir_of "$1" "$2" "$3")
  if [[ -f "$workdir/summary.json" ]]; then
    echo "done already: $workdir"
    return 0
  fi
  mkdir -p "$workdir"
  echo "start: $workdir"
  # shellcheck disable=SC2086  # EXTRA is a list of flags
  if "$PYTHON" -m experiments.tagging --workdir="$workdir" \
      --config="experiments/configs/tagging.py:$1_study_$2" \
      --config.seed="$3" $EXTRA >"$workdir/run.log" 2>&1; then
    echo "end: $workdir"
  else
    echo "FAILED: $workdir (see $workdir/run.log)" >&2
    return 1
  fi
}

echo "Parameters (word level: the word RNN, output layer and end input):"
"$PYTHON" - "$TREEBANKS" "$VARIANTS" <<'EOF'
import sys
from experiments.configs import tagging as tagging_config
from tasks import tagging
print("| config | hidden per direction | word-level params | all params |")
print("|---|---|---|---|")
for treebank in sys.argv[1].split():
  for variant in sys.argv[2].split():
    config = tagging_config.get_config(f"{treebank}_study_{variant}")
    counts = tagging.parameter_counts(config)
    print(f"| {config.variant} | {config.hidden_size} | {counts.word_level:,} | "
          f"{counts.total:,} |")
EOF

failed=0
pids=()
for seed in $SEEDS; do
  for treebank in $TREEBANKS; do
    for variant in $VARIANTS; do
      while (( $(jobs -rp | wc -l) >= JOBS )); do
        wait -n || failed=1
      done
      run_one "$treebank" "$variant" "$seed" &
      pids+=($!)
    done
  done
done
for pid in "${pids[@]}"; do
  wait "$pid" || failed=1
done

finished=()
for seed in $SEEDS; do
  for treebank in $TREEBANKS; do
    for variant in $VARIANTS; do
      workdir=$(workdir_of "$treebank" "$variant" "$seed")
      [[ -f "$workdir/summary.json" ]] && finished+=("$workdir")
    done
  done
done
if (( ${#finished[@]} == 0 )); then
  echo "error: no run finished" >&2
  exit 1
fi
echo
"$PYTHON" -m experiments.report "${finished[@]}"
echo
"$PYTHON" - "${finished[@]}" <<'EOF'
import collections
import json
import os
import statistics
import sys
by_config = collections.defaultdict(lambda: collections.defaultdict(list))
for workdir in sys.argv[1:]:
  with open(os.path.join(workdir, "summary.json")) as f:
    summary = json.load(f)
  with open(os.path.join(workdir, "config.json")) as f:
    variant = json.load(f)["variant"]
  # The checkpoint kept by valid accuracy where there is one, else the last.
  best = summary.get("best") or {}
  test = best.get("metrics", {}).get("test") or summary["metrics"]["test"]
  for key in ("accuracy", "accuracy_unseen"):
    by_config[variant][key].append(100 * test[key])
def show(values):
  if len(values) == 1:
    return f"{values[0]:.2f}"
  return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"
print("| config | test accuracy % (best valid) | on unseen words % | seeds |")
print("|---|---|---|---|")
for variant, metrics in sorted(by_config.items()):
  print(f"| {variant} | {show(metrics['accuracy'])} | "
        f"{show(metrics['accuracy_unseen'])} | {len(metrics['accuracy'])} |")
EOF
exit "$failed"
