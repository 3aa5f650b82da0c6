#!/usr/bin/env bash
# The GPU checks and benchmarks in one run, for a GPU machine whose own
# python3 has jax (CUDA), flax, optax and torch. TFDS and its missing
# dependencies travel as wheels in $WHEELS (default workdirs/whl, which
# gpu_wheels.sh fills; see docs/performance.md); they are installed into a
# temporary directory, never into the checkout.
#
#   bash benchmarks/gpu_suite.sh OUTDIR [SECTION ...]
#
# SECTIONs (default: all, in this order), each under its own time limit so
# that one failure leaves the rest: tests (the cuDNN and scan tests at full
# float32 precision), rnn_gru, rnn_lstm (default precision), rnn_lstm_highest
# (TF32 off), rnn_layouts (bidirectional and 2-layer, small, training), tree
# (tree_speed at batch sizes 1..256, forward), tree_grad
# (value and gradient at batch 128), precision (the bfloat16 tests) and
# devices (bfloat16 against float32 for the PTB and NMT train steps, and all
# the machine's GPUs against one). The environment is always printed.
set -u
out=${1:-/tmp/gpu_suite}
shift || true
sections=${*:-tests rnn_gru rnn_lstm rnn_lstm_highest rnn_layouts tree tree_grad precision devices}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.5
wheels=${WHEELS:-workdirs/whl}
if ls "$wheels"/*.whl > /dev/null 2>&1; then
  site=$(mktemp -d)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target "$site" "$wheels"/*.whl && export PYTHONPATH=$site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
quiet() { grep -v "^[IW][0-9]\{4\} " ; }

echo "=== environment ($(date +%T))"
{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total --format=csv
  python3 -c "import jax, flax, optax, torch; from jax.experimental import rnn
print('jax', jax.__version__, jax.devices(), '| flax', flax.__version__,
      '| torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn',
      torch.backends.cudnn.version())"
  python3 -c "import tensorflow_datasets as t; print('tfds', t.__version__)"
  nproc; } 2>&1 | quiet | tee "$out/environment.txt"

for section in $sections; do
  echo "=== $section ($(date +%T))"
  case $section in
    tests) JAX_DEFAULT_MATMUL_PRECISION=highest timeout 200 python3 -m pytest \
             -q -rfEs --tb=short -p no:cacheprovider tests/test_cudnn.py \
             tests/test_cells_unroll.py -k "not in_place" 2>&1 | tail -40 \
             | tee "$out/tests.txt" ;;
    rnn_gru) timeout 90 python3 -m benchmarks.rnn_speed --cells=gru \
               --rounds=9 --calls=5 2>&1 | quiet | tee -a "$out/rnn_speed.txt" ;;
    rnn_lstm) timeout 120 python3 -m benchmarks.rnn_speed --cells=lstm \
                --rounds=9 --calls=5 2>&1 | quiet | tee -a "$out/rnn_speed.txt" ;;
    rnn_lstm_highest) timeout 60 python3 -m benchmarks.rnn_speed --cells=lstm \
                        --modes=train --matmul_precision=highest --rounds=7 \
                        --calls=5 2>&1 | quiet | tee -a "$out/rnn_speed.txt" ;;
    rnn_layouts) timeout 70 python3 -m benchmarks.rnn_speed --shapes=small \
                   --modes=train --layouts=bidirectional,stacked2 --rounds=7 \
                   --calls=5 2>&1 | quiet | tee -a "$out/rnn_speed.txt" ;;
    tree) timeout 70 python3 -m benchmarks.tree_speed --pack \
            --sizes=1,8,32,128,256 2>&1 | quiet | tee -a "$out/tree_speed.txt" ;;
    tree_grad) timeout 45 python3 -m benchmarks.tree_speed --pack --grad \
                 --sizes=128 2>&1 | quiet | tee -a "$out/tree_speed.txt" ;;
    precision) timeout 200 python3 -m pytest -q -rfEs --tb=short \
                 -p no:cacheprovider tests/test_precision.py 2>&1 | tail -20 \
                 | tee "$out/precision.txt" ;;
    devices) timeout 300 python3 -m benchmarks.devices --rounds=5 --calls=10 \
               2>&1 | quiet | tee -a "$out/devices.txt" ;;
    *) echo "unknown section $section" ;;
  esac
done
echo "=== done ($(date +%T))"
