"""Timing helpers shared by the benchmarks: interleaved rounds, paired ratios.

No flags here, so that every benchmark script can import it.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import jax


def time_interleaved(impls: dict[str, Callable[[], object]], rounds: int,
                     calls: int, warmup_calls: int = 1,
                     clock: Callable[[], float] = time.perf_counter
                     ) -> dict[str, list[float]]:
  """Seconds per call of each implementation in each round; every round
  times every implementation once (`calls` calls), in turn.

  Before its timed calls in a round, each implementation makes
  `warmup_calls` untimed calls, so that every one is timed in the steady
  state of back-to-back calls, as in a training loop. The first call after
  another library's calls (or after an idle pause) is slower for a JAX layer
  and barely for PyTorch (`python -m tools.perf.cold_call` measures it, see
  docs/performance.md), which would bias the comparison against whichever
  implementation follows torch in the round.
  """
  for fn in impls.values():  # warm up (compilation, allocator)
    fn()
    fn()
  samples = {name: [] for name in impls}
  for _ in range(rounds):
    for name, fn in impls.items():
      for _ in range(warmup_calls):
        fn()
      start = clock()
      for _ in range(calls):
        fn()
      samples[name].append((clock() - start) / calls)
  return samples


def paired_ratio(ours_samples: list[float], other: list[float]) -> float:
  """Median over rounds of other / ours (above 1: ours is faster)."""
  return statistics.median(o / a for a, o in zip(ours_samples, other))


def gemm_peak_flops() -> float:
  """FLOP/s of a large float32 matmul (2048^2 on a CPU, 8192^2 on a GPU)."""
  size = 8192 if jax.default_backend() == "gpu" else 2048
  a = jax.random.normal(jax.random.PRNGKey(0), (size, size))
  f = jax.jit(lambda x: x @ x)
  jax.block_until_ready(f(a))
  times = []
  for _ in range(5):
    start = time.perf_counter()
    jax.block_until_ready(f(a))
    times.append(time.perf_counter() - start)
  return 2 * size ** 3 / min(times)
