"""Level-batched tree evaluation against one tree at a time, in nodes per second.

  python -m benchmarks.tree_speed [--composition=tree_lstm] [--hidden=128]

For each batch size B in 1, 2, 4, ..., 256 it draws B ListOps gold trees
(the task's binary trees, 2-199 nodes) and times
  batched:  ONE jitted call of `models.recursive.evaluate` on the whole batch
            (one lax.scan over the levels, all trees at once), forward only;
  per tree: the same jitted function called once per tree (a batch of one,
            its shapes bucketed as usual, so it compiles once per bucket);
  with --grad, both times of value-and-gradient of the sum of root h.
Compilation and host-to-device copies are excluded (every shape is warmed
up first, the tree arrays are put on the device before timing); times are
the median of --repeats rounds. Prints nodes/s of each and their ratio.

On a CPU the ratio is bounded by the per-node matmul work, which batching
does not reduce: it is largest for small H (overhead-bound per-tree calls)
and on accelerators, where one tree at a time leaves the device idle.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from corpora import listops as listops_data
from models import compositions
from models import recursive
from models import trees as tree_lib
from tasks import listops as listops_task


def _trees(count: int, seed: int) -> list[tree_lib.Tree]:
  rng = np.random.default_rng(seed)
  out = []
  while len(out) < count:
    expr = listops_data.generate_expression(rng)
    tokens = listops_data.to_tokens(expr)
    if len(tokens) <= listops_data.MAX_LENGTH:
      out.append(listops_task.to_tree(" ".join(tokens)))
  return out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--composition", default="tree_lstm")
  parser.add_argument("--hidden", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--sizes", default="1,2,4,8,16,32,64,128,256")
  parser.add_argument("--pack", action="store_true", help="packed schedule")
  parser.add_argument("--grad", action="store_true", help="time value+grad")
  args = parser.parse_args()

  comp = compositions.get_composition(args.composition)
  params = comp.init(jax.random.PRNGKey(0), args.hidden, args.hidden, comp.arity)
  table = jax.random.normal(jax.random.PRNGKey(1),
                            (len(listops_data.VOCAB), args.hidden))

  def forward(params, tb):
    tokens = jnp.asarray(tb.tokens)
    x = jnp.where((tokens >= 0)[:, None], table[jnp.maximum(tokens, 0)], 0.0)
    states = recursive.evaluate(comp, params, x, tb)
    return jnp.sum(recursive.root_states(states, tb).h)

  fn = jax.jit(jax.value_and_grad(forward) if args.grad else forward)

  def run(batches):
    out = None
    for tb in batches:
      out = fn(params, tb)
    jax.block_until_ready(out)

  def timed(batches):
    run(batches)  # compile every shape
    times = []
    for _ in range(args.repeats):
      start = time.perf_counter()
      run(batches)
      times.append(time.perf_counter() - start)
    return statistics.median(times)

  print(f"# composition={args.composition} H={args.hidden} pack={args.pack} "
        f"grad={args.grad}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, jax {jax.__version__} "
        f"({jax.devices()[0].platform})")
  print(f"{'B':>4} {'nodes':>6} {'batched nodes/s':>16} {'per-tree nodes/s':>17} "
        f"{'ratio':>7}")
  for size in [int(s) for s in args.sizes.split(",")]:
    trees = _trees(size, seed=size)
    nodes = sum(len(t.tokens) for t in trees)
    # Arrays on the device first: the timings are of the evaluation only.
    batched = jax.device_put([tree_lib.batch_trees(trees, arity=2, pack=args.pack)])
    singles = jax.device_put([tree_lib.batch_trees([t], arity=2, pack=args.pack)
                              for t in trees])
    t_batch, t_single = timed(batched), timed(singles)
    print(f"{size:>4} {nodes:>6} {nodes / t_batch:>16,.0f} "
          f"{nodes / t_single:>17,.0f} {t_single / t_batch:>6.1f}x", flush=True)


if __name__ == "__main__":
  main()
