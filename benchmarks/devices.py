"""bfloat16 against float32, and all devices against one, for whole train steps.

  python -m benchmarks.devices [--models=ptb,nmt] [--rounds=5] [--calls=10]

For each model, times the jitted train step (train.make_steps, the loop's
own) interleaved round by round (benchmarks/timing.py) on batches drawn
before timing:
  - compute_dtype float32 against bfloat16, on one device;
  - with more than one device: the step on all N devices (data parallel,
    devices.py) against the step on one, with N times the batch for the N
    devices, so that each device has the one-device batch (throughput
    scaling).
Prints a markdown row per comparison: examples per second of each and the
median over rounds of the paired throughput ratio.

Models: 'ptb', the small PTB language model (2 x 200 LSTM, 20 x 20 tokens a
batch; examples are tokens); 'nmt', the attention model of
experiments/configs/nmt.py (examples are sentence pairs).
"""

from __future__ import annotations

import statistics

import jax
import ml_collections
from absl import app, flags

import precision
import tasks as tasks_lib
import train
from benchmarks import replicas as replicas_benchmark
from benchmarks import timing
from experiments.configs import nmt as nmt_config
from experiments.configs import ptb as ptb_config

CONFIGS = {"ptb": lambda: ptb_config.get_config("small"),
           "nmt": lambda: nmt_config.get_config("attention")}


def _with(config, **values):
  config = ml_collections.ConfigDict(config.to_dict())
  for key, value in values.items():
    config[key] = value
  return config


def _impl(config, num_batches: int = 3):
  """-> (a timed call of one train step of config, examples per step)."""
  task = tasks_lib.build(config)
  tx = train.make_optimizer(config)
  parallel = train.data_parallel(config)
  step, _ = train.make_steps(task, tx, 0.0, precision.compute_dtype(config),
                             parallel)
  state = train.initial_state(config, task, tx)
  batches = [next(task.train_batches) for _ in range(num_batches)]
  if parallel is not None:
    state = parallel.put_state(state)
    batches = [parallel.put_batch(b) for b in batches]
  return (replicas_benchmark._stepper(step, state, batches),  # pylint: disable=protected-access
          task.examples_in(batches[0]))


def compare(configs: dict[str, ml_collections.ConfigDict], rounds: int,
            calls: int) -> dict[str, dict[str, float]]:
  """{name: {'seconds': median s per step, 'examples_per_s', 'ratio': the
  median over rounds of name's examples per second over the first's}} for
  configs timed in turn, the first being the reference."""
  impls, examples = {}, {}
  for name, config in configs.items():
    impls[name], examples[name] = _impl(config)
  samples = timing.time_interleaved(impls, rounds=rounds, calls=calls)
  first = next(iter(configs))
  return {name: {"seconds": statistics.median(samples[name]),
                 "examples_per_s": examples[name] / statistics.median(samples[name]),
                 "ratio": timing.paired_ratio(samples[name], samples[first])
                          * examples[name] / examples[first]}
          for name in configs}


def comparisons(config, num_devices: int) -> dict[str, dict]:
  """The configs each comparison times: dtype, and devices when N > 1."""
  out = {"compute_dtype": {
      "float32": _with(config, num_devices=1, compute_dtype="float32"),
      "bfloat16": _with(config, num_devices=1, compute_dtype="bfloat16")}}
  if num_devices > 1:
    out["devices"] = {
        "1 device": _with(config, num_devices=1),
        f"{num_devices} devices": _with(
            config, num_devices=num_devices,
            batch_size=config.batch_size * num_devices)}
  return out


def main(argv):
  del argv
  FLAGS = flags.FLAGS
  print(f"device: {train._hardware()}")  # pylint: disable=protected-access
  print("| model | comparison | examples/s | speed-up over the first |\n"
        "|---|---|---|---|")
  for name in FLAGS.models:
    if name not in CONFIGS:
      raise app.UsageError(f"--models: unknown {name!r}; known are {list(CONFIGS)}")
    for label, configs in comparisons(CONFIGS[name](), jax.device_count()).items():
      result = compare(configs, FLAGS.rounds, FLAGS.calls)
      for variant, row in result.items():
        print(f"| {name} | {label}: {variant} | {row['examples_per_s']:,.0f} | "
              f"{row['ratio']:.2f}x |", flush=True)


def define_flags() -> None:
  """The command line's flags (defined when run, so importing adds none)."""
  flags.DEFINE_list("models", ["ptb", "nmt"], "Models to time: ptb, nmt.")
  flags.DEFINE_integer("rounds", 5, "Interleaved rounds (medians over them).")
  flags.DEFINE_integer("calls", 10, "Timed steps per variant per round.")


if __name__ == "__main__":
  define_flags()
  app.run(main)
