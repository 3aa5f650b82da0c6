"""The benchmark's own arithmetic: paired ratios and XLA's planned memory."""

import jax
import jax.numpy as jnp

from benchmarks import rnn_speed


def test_paired_ratio_is_the_median_of_per_round_ratios():
  # Per round the peer takes 1x, 3x and 1.25x our time: the paired ratio is
  # 1.25, where the ratio of the medians (3 / 1) would say 3.
  ours = [1.0, 1.0, 4.0]
  peer = [1.0, 3.0, 5.0]
  assert rnn_speed.paired_ratio(ours, peer) == 1.25
  assert rnn_speed.paired_ratio(peer, ours) == 0.8


def test_compiled_impl_runs_and_reports_working_memory():
  x = jnp.ones((256, 256), jnp.float32)
  impl = rnn_speed._compiled(jax.jit(lambda a: jnp.tanh(a @ a) @ a), x)
  impl.run()
  # At least the [256, 256] float32 output (256 KiB) is planned.
  assert impl.memory_bytes is not None and impl.memory_bytes >= 256 * 256 * 4
