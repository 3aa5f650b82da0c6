"""Page faults and time per call of this project's LSTM/GRU training step.

  python -m tools.perf.page_faults [--cell=lstm] [--steps=80,90,100] \
      [--batch=32] [--fault_calls=15] [--torch]

For each T (I=128, H=256) it prints the median time per call, the minor page
faults per call (`getrusage`), and XLA's planned working memory (temporaries
+ outputs). With `--torch` it also measures torch's nn.LSTM/nn.GRU training
step (as many threads as cores) in the same process, after ours. Run it
under an allocator setting to see what it does, e.g.

  MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 \
      python -m tools.perf.page_faults --steps=100 --torch

(glibc then keeps freed memory in the heap instead of returning allocations
above its adaptive 32 MB limit to the kernel).
"""

from __future__ import annotations

import os
import resource
import statistics
import time

import jax
import jax.numpy as jnp
from absl import app, flags

from benchmarks import rnn_speed
from models import cells, unroll

flags.DEFINE_enum("cell", "lstm", ["lstm", "gru"], "Cell.")
flags.DEFINE_list("steps", ["80", "90", "100"], "Sequence lengths T.")
flags.DEFINE_integer("batch", 32, "Batch size B.")
flags.DEFINE_integer("fault_calls", 15, "Timed calls per measurement.")
flags.DEFINE_bool("torch", False, "Also measure torch's layer.")

INPUTS, HIDDEN = 128, 256


def measure(run, calls: int) -> tuple[float, float]:
  """(median seconds per call, minor page faults per call) after 3 warm-ups."""
  for _ in range(3):
    run()
  times = []
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  for _ in range(calls):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
  faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
  return statistics.median(times), faults / calls


def main(argv):
  del argv
  f = flags.FLAGS
  if f.torch:
    import torch  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(os.cpu_count() or 1)
  cell = cells.get_cell(f.cell)
  params = cell.init(jax.random.PRNGKey(0), INPUTS, HIDDEN)
  grad = jax.jit(jax.grad(lambda p, x: jnp.sum(unroll.rnn(cell, p, x)[0]),
                          argnums=(0, 1)))
  print(f"{f.cell} training step, B={f.batch} I={INPUTS} H={HIDDEN}")
  print("| T | implementation | ms/call | ms per time step | page faults/call "
        "| XLA memory MB |")
  print("|---|---|---|---|---|---|")
  for steps in map(int, f.steps):
    xs = jax.random.normal(jax.random.PRNGKey(1), (f.batch, steps, INPUTS))
    impls = {"ours": rnn_speed._compiled(grad, params, xs)}  # pylint: disable=protected-access
    if f.torch:
      impls["torch"] = rnn_speed.torch_rnn(
          f.cell, (f.batch, steps, INPUTS, HIDDEN), "train")
    for name, impl in impls.items():
      seconds, faults = measure(impl.run, f.fault_calls)
      memory = ("" if impl.memory_bytes is None
                else f"{impl.memory_bytes / 2**20:.1f}")
      print(f"| {steps} | {name} | {seconds * 1e3:.1f} | "
            f"{seconds * 1e3 / steps:.3f} | {faults:.0f} | {memory} |",
            flush=True)


if __name__ == "__main__":
  app.run(main)
