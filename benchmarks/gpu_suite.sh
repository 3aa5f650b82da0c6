#!/usr/bin/env bash
# The GPU checks and benchmarks in one run, for a lent GPU machine whose own
# python3 has jax (CUDA), flax, optax and torch. TFDS and its missing
# dependencies travel as wheels in .whl/ (see the README's Performance section).
#
#   bash benchmarks/gpu_suite.sh OUTDIR
#
# Sections, each under its own time limit so that one failure leaves the rest:
# environment; the cuDNN and scan tests at full float32 precision; rnn_speed
# for GRU, then LSTM (default precision, then TF32 off); tree_speed at batch
# sizes 1..256, forward, then value-and-gradient at batch 128.
set -u
out=${1:-/tmp/gpu_suite}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.5
if ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
section() { echo "=== $1 ($(date +%T))" | tee -a "$out/sections.txt"; }
quiet() { grep -v "^[IW][0-9]\{4\} " ; }

section environment
{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total --format=csv
  python3 -c "import jax, flax, optax, torch; from jax.experimental import rnn
print('jax', jax.__version__, jax.devices(), '| flax', flax.__version__,
      '| torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn',
      torch.backends.cudnn.version())"
  python3 -c "import tensorflow_datasets as t; print('tfds', t.__version__)"
  nproc; } 2>&1 | quiet | tee "$out/environment.txt"

section tests
JAX_DEFAULT_MATMUL_PRECISION=highest timeout 120 python3 -m pytest -q -rs \
  -p no:cacheprovider tests/test_cudnn.py tests/test_cells_unroll.py \
  -k "not in_place" 2>&1 | tail -25 | tee "$out/tests.txt"

section rnn_speed_gru
timeout 90 python3 -m benchmarks.rnn_speed --cells=gru --rounds=9 --calls=5 \
  2>&1 | quiet | tee "$out/rnn_speed.txt"
section rnn_speed_lstm
timeout 120 python3 -m benchmarks.rnn_speed --cells=lstm --rounds=9 --calls=5 \
  2>&1 | quiet | tee -a "$out/rnn_speed.txt"
section rnn_speed_lstm_highest
timeout 60 python3 -m benchmarks.rnn_speed --cells=lstm --modes=train \
  --matmul_precision=highest --rounds=7 --calls=5 2>&1 | quiet \
  | tee -a "$out/rnn_speed.txt"

section tree_speed
timeout 70 python3 -m benchmarks.tree_speed --pack --sizes=1,8,32,128,256 \
  2>&1 | quiet | tee "$out/tree_speed.txt"
section tree_speed_grad
timeout 45 python3 -m benchmarks.tree_speed --pack --grad --sizes=128 \
  2>&1 | quiet | tee -a "$out/tree_speed.txt"
section done
