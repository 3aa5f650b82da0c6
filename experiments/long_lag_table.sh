#!/usr/bin/env bash
# Runs every row of the Hochreiter & Schmidhuber 1997 table in
# docs/results/long_time_lags.md, two at a time, into workdirs/, then prints the
# table rows. tanh-RNN rows that run to their budget without solving are capped
# (see their commands) to save time.
#   bash experiments/long_lag_table.sh            # all rows
#   ROWS="adding_lstm_100 adding_rnn_100" bash experiments/long_lag_table.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p workdirs

declare -A CMD=(
  [adding_lstm_100]="experiments.adding --config.cell=lstm --config.seq_len=100"
  [adding_gru_100]="experiments.adding --config.cell=gru --config.seq_len=100"
  [adding_rnn_100]="experiments.adding --config.cell=rnn --config.seq_len=100"
  [adding_lstm_200]="experiments.adding --config=experiments/configs/adding.py:200 --config.cell=lstm"
  [adding_gru_200]="experiments.adding --config=experiments/configs/adding.py:200 --config.cell=gru"
  [adding_rnn_200]="experiments.adding --config=experiments/configs/adding.py:200 --config.cell=rnn --config.max_train_examples=74000"
  [adding_lstm_500]="experiments.adding --config=experiments/configs/adding.py:500 --config.cell=lstm"
  [adding_lstm_200_fb4]="experiments.adding --config=experiments/configs/adding.py:200 --config.cell=lstm --config.forget_bias=4.0"
  [adding_lstm_500_fb4]="experiments.adding --config=experiments/configs/adding.py:500 --config.cell=lstm --config.forget_bias=4.0"
  [adding_gru_500]="experiments.adding --config=experiments/configs/adding.py:500 --config.cell=gru"
  [adding_rnn_500]="experiments.adding --config=experiments/configs/adding.py:500 --config.cell=rnn --config.max_train_examples=74000"
  [order_6a_lstm]="experiments.temporal_order --config.cell=lstm"
  [order_6a_gru]="experiments.temporal_order --config.cell=gru"
  [order_6a_rnn]="experiments.temporal_order --config.cell=rnn --config.max_train_examples=100000"
  [reber_lstm]="experiments.reber --config.cell=lstm"
  [reber_gru]="experiments.reber --config.cell=gru"
  [reber_rnn]="experiments.reber --config.cell=rnn --config.max_train_examples=50000"
)
ORDER="adding_lstm_100 adding_gru_100 adding_rnn_100 order_6a_lstm order_6a_gru
  order_6a_rnn reber_lstm reber_gru reber_rnn adding_lstm_200 adding_gru_200
  adding_lstm_200_fb4 adding_rnn_200 adding_lstm_500_fb4 adding_lstm_500
  adding_gru_500 adding_rnn_500"
ROWS=${ROWS:-$ORDER}

run_row() {
  local row=$1
  $PY -m ${CMD[$row]} --workdir=workdirs/$row --config.progress_bar=False \
      > workdirs/$row.log 2>&1 || echo "$row exited with $?" >> workdirs/$row.log
}

running=0
for row in $ROWS; do
  run_row "$row" &
  running=$((running + 1))
  if [ "$running" -ge 2 ]; then wait -n; running=$((running - 1)); fi
done
wait
for row in $ROWS; do echo "$row: python -m ${CMD[$row]} --workdir=workdirs/$row"; done
$PY -m experiments.report $(for row in $ROWS; do echo workdirs/$row; done)
