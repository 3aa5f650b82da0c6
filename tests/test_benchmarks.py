"""The benchmarks' own arithmetic: paired ratios, interleaved timing and
XLA's planned memory."""

import jax
import jax.numpy as jnp

from benchmarks import devices as devices_benchmark
from benchmarks import replicas as replicas_benchmark
from benchmarks import rnn_speed, timing
from experiments.configs import adding as adding_config


def test_paired_ratio_is_the_median_of_per_round_ratios():
  # Per round the peer takes 1x, 3x and 1.25x our time: the paired ratio is
  # 1.25, where the ratio of the medians (3 / 1) would say 3.
  ours = [1.0, 1.0, 4.0]
  peer = [1.0, 3.0, 5.0]
  assert timing.paired_ratio(ours, peer) == 1.25
  assert timing.paired_ratio(peer, ours) == 0.8


def test_compiled_impl_runs_and_reports_working_memory():
  x = jnp.ones((256, 256), jnp.float32)
  impl = rnn_speed._compiled(jax.jit(lambda a: jnp.tanh(a @ a) @ a), x)
  impl.run()
  # At least the [256, 256] float32 output (256 KiB) is planned.
  assert impl.memory_bytes is not None and impl.memory_bytes >= 256 * 256 * 4


def test_interleaved_timing_makes_untimed_warmup_calls_first():
  # A fake clock that advances only inside calls, by the call's cost: cold
  # calls (the first after another implementation's) cost 10, warm ones 1.
  now = [0.0]
  last = [None]
  calls = {"a": 0, "b": 0}

  def make(name):
    def run():
      now[0] += 1.0 if last[0] == name else 10.0
      last[0] = name
      calls[name] += 1
    return run

  impls = {"a": make("a"), "b": make("b")}
  warm = timing.time_interleaved(impls, rounds=3, calls=2, warmup_calls=1,
                                    clock=lambda: now[0])
  assert warm == {"a": [1.0] * 3, "b": [1.0] * 3}
  assert calls == {"a": 2 + 3 * 3, "b": 2 + 3 * 3}  # 2 warm-ups + 3 per round
  cold = timing.time_interleaved(impls, rounds=3, calls=2, warmup_calls=0,
                                    clock=lambda: now[0])
  assert cold == {"a": [5.5] * 3, "b": [5.5] * 3}  # (10 + 1) / 2


def test_replicas_benchmark_counts_flops_and_times_both_ways():
  config = adding_config.get_config("100")
  # 3 x forward; forward = 2 * (10 * 100 rows) * (2 inputs + 128) * 4 * 128.
  assert replicas_benchmark.matmul_flops(config) == 3 * 2 * 1000 * 130 * 512
  config.seq_len, config.hidden_size = 10, 8
  rows = replicas_benchmark.measure(config, [1, 3], rounds=1, calls=1)
  assert [row["replicas"] for row in rows] == [1, 3]
  assert all(row["single_s"] > 0 and row["seconds"]["vmap"] > 0
             and row["speedup"]["unrolled"] > 0 for row in rows)


def test_devices_benchmark_times_each_dtype_and_scales_the_batch():
  config = adding_config.get_config("100")
  config.seq_len, config.hidden_size = 10, 8
  pairs = devices_benchmark.comparisons(config, num_devices=4)
  assert list(pairs["compute_dtype"]) == ["float32", "bfloat16"]
  assert [c.compute_dtype for c in pairs["compute_dtype"].values()] == [
      "float32", "bfloat16"]
  one, four = pairs["devices"].values()
  assert (one.num_devices, four.num_devices) == (1, 4)
  assert four.batch_size == 4 * one.batch_size == 4 * config.batch_size
  assert "devices" not in devices_benchmark.comparisons(config, num_devices=1)
  result = devices_benchmark.compare(pairs["compute_dtype"], rounds=1, calls=1)
  assert result["float32"]["ratio"] == 1.0
  assert all(row["examples_per_s"] > 0 for row in result.values())
