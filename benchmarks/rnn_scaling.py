"""How time and compile time grow with sequence length and batch size.

  python -m benchmarks.rnn_scaling [--cell=lstm] [--steps=25,50,100,200,400,800] \
      [--batches=1,8,32,128,256] [--rounds=5]

For each T (batch 32, I=128, H=256) it prints the median training-step time
(forward + backward through time, this project's `unroll.rnn`), the ratio to
the previous T (2.0 = linear when T doubles) as a ratio of medians and as a
paired ratio (the median over rounds of this T's time / the previous T's),
and the compile time (the first call minus a warm call). All lengths are
timed in the same interleaved rounds (`timing.time_interleaved`, one
untimed call before each timed one). Then, at T=100, the time per sequence
for each batch size, against Flax's nn.RNN in the same rounds.
"""

from __future__ import annotations

import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
from absl import app, flags

from benchmarks import timing
from models import cells, unroll

flags.DEFINE_string("cell", "lstm", "lstm or gru.")
flags.DEFINE_list("steps", ["25", "50", "100", "200", "400", "800"],
                  "Sequence lengths T.")
flags.DEFINE_list("batches", ["1", "8", "32", "128", "256"], "Batch sizes B.")
flags.DEFINE_integer("rounds", 5, "Repeats (median is reported).")

INPUTS, HIDDEN = 128, 256
_FLAX = {"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell}


def _train_fn(cell_name: str):
  cell = cells.get_cell(cell_name)

  def loss(p, x):
    return jnp.sum(unroll.rnn(cell, p, x)[0])
  return cell, jax.jit(jax.grad(loss, argnums=(0, 1)))


def _flax_train_fn(cell_name: str, xs):
  layer = nn.RNN(_FLAX[cell_name](features=HIDDEN))
  params = layer.init(jax.random.PRNGKey(0), xs)
  grad = jax.jit(jax.grad(lambda p, x: jnp.sum(layer.apply(p, x)),
                          argnums=(0, 1)))
  return _compiled_run(grad, params, xs)[0]


def _compiled_run(fn, *args):
  """(run, compile seconds): `run()` makes one call and waits for it; the
  compile time is the first call minus a warm call."""
  run = lambda: jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  run()
  first = time.perf_counter() - start
  start = time.perf_counter()
  run()
  return run, first - (time.perf_counter() - start)


def main(argv):
  del argv
  name, rounds = flags.FLAGS.cell, flags.FLAGS.rounds
  print(f"cell {name}, B=32 I={INPUTS} H={HIDDEN}, training step; "
        f"device {jax.devices()[0].device_kind}; all lengths timed in "
        f"{rounds} interleaved rounds")
  print("| T | ms/step | ratio to previous T (of medians) | paired | "
        "compile s |")
  print("|---|---|---|---|---|")
  cell, grad = _train_fn(name)
  params = cell.init(jax.random.PRNGKey(0), INPUTS, HIDDEN)
  runs, compile_seconds = {}, {}
  for steps in map(int, flags.FLAGS.steps):
    xs = jax.random.normal(jax.random.PRNGKey(1), (32, steps, INPUTS))
    runs[steps], compile_seconds[steps] = _compiled_run(grad, params, xs)
  samples = timing.time_interleaved(runs, rounds, calls=1)
  previous = None
  for steps, times in samples.items():
    seconds = statistics.median(times)
    ratio = paired = ""
    if previous is not None:
      ratio = f"{seconds / statistics.median(samples[previous]):.2f}"
      paired = f"{timing.paired_ratio(samples[previous], times):.2f}"
    print(f"| {steps} | {seconds * 1e3:.1f} | {ratio} | {paired} | "
          f"{compile_seconds[steps]:.2f} |", flush=True)
    previous = steps

  print("\nT=100: microseconds per sequence (training step / B)")
  print("| B | ours | flax | flax / ours (of medians) | paired |")
  print("|---|---|---|---|---|")
  for batch in map(int, flags.FLAGS.batches):
    xs = jax.random.normal(jax.random.PRNGKey(1), (batch, 100, INPUTS))
    impls = {"ours": _compiled_run(grad, params, xs)[0],
             "flax": _flax_train_fn(name, xs)}
    samples = timing.time_interleaved(impls, rounds, calls=1)
    mine, peer = (statistics.median(samples[k]) for k in ("ours", "flax"))
    print(f"| {batch} | {mine / batch * 1e6:.0f} | {peer / batch * 1e6:.0f} | "
          f"{peer / mine:.2f}x | "
          f"{timing.paired_ratio(samples['ours'], samples['flax']):.2f}x |",
          flush=True)


if __name__ == "__main__":
  app.run(main)
