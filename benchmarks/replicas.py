"""Throughput of K replicas in one program against K sequential single runs.

  python -m benchmarks.replicas [--tasks=adding,adding_h16,ptb]
      [--replicas=1,2,4,8,16] [--rounds=5] [--calls=20]

For each task's model and each K, times the jitted train step of one model
(train.make_steps) and of K stacked replicas (train.make_replicated_steps)
laid out both ways, 'vmap' (one batched program) and 'unrolled' (K copies of
the single program in one), interleaved round by round
(benchmarks/timing.py), on batches drawn before timing. K sequential runs
take K single steps for the K replicas' batches, so a speed-up is the median
over rounds of K * t(single) / t(K replicas).
Prints one markdown row per (task, K): examples per second of the K runs
and of each layout, each layout's speed-up, and each FLOP rate as a share of
a large matmul's (the model's matmul FLOPs, counted by `matmul_flops`; GEMM
peak from benchmarks/timing.py): a model that already keeps the cores busy
alone gains little from replicas.

Models: 'adding', the adding problem's at T=100 (LSTM, 128 units, batch 10);
'adding_h16', the same with 16 units; 'ptb', the small PTB language model
(2 x 200 LSTM, batch 20 x 20 tokens; examples are tokens).
"""

from __future__ import annotations

import statistics
from typing import Any

import jax
import ml_collections
from absl import app, flags

import replicas
import tasks as tasks_lib
import train
from benchmarks import timing
from experiments.configs import adding as adding_config
from experiments.configs import ptb as ptb_config


def _adding(hidden_size: int = 128):
  config = adding_config.get_config("100")
  config.hidden_size = hidden_size
  return config


CONFIGS = {"adding": _adding, "adding_h16": lambda: _adding(16),
           "ptb": lambda: ptb_config.get_config("small")}


def matmul_flops(config, vocab_size: int = 0) -> float:
  """Matmul FLOPs of one model's train step (forward + backward = 3 x forward):
  2 * rows * (inputs + H) * 4H per LSTM layer and step, plus the output layer."""
  if config.task == "adding":
    rows, inputs, outputs = config.batch_size * config.seq_len, 2, 0
  else:  # ptb: a vocabulary-sized softmax on every token
    rows, inputs, outputs = (config.batch_size * config.seq_len,
                             config.hidden_size, vocab_size)
  hidden = config.hidden_size
  forward = 2 * rows * (inputs + hidden) * 4 * hidden
  forward += 2 * rows * 2 * hidden * 4 * hidden * (config.num_layers - 1)
  forward += 2 * rows * hidden * outputs
  return 3.0 * forward


def _stepper(step, state, batches, *extra):
  """A call that runs one train step on the next of `batches` and waits."""
  holder = {"state": state, "i": 0}

  def run():
    batch = batches[holder["i"] % len(batches)]
    holder["i"] += 1
    holder["state"], metrics = step(holder["state"], batch, *extra)
    jax.block_until_ready(metrics)

  return run


PROGRAMS = ("vmap", "unrolled")


def measure(config, num_replicas: list[int], rounds: int, calls: int
            ) -> list[dict[str, Any]]:
  """[{'replicas': K, 'single_s', 'seconds': {program: s}, 'speedup':
  {program: x}, 'examples_per_step', 'flops_per_step'}] for config's model
  (one model's step FLOPs), each replicated program of PROGRAMS timed
  against the single step in the same rounds; one task, its batches stacked
  K times."""
  task = tasks_lib.build(config)
  tx = train.make_optimizer(config)
  one = train.initial_state(config, task, tx)
  single_step, _ = train.make_steps(task, tx, config.get("ema_decay", 0.0))
  draws = [next(task.train_batches) for _ in range(4)]
  examples = task.examples_in(draws[0])
  rows = []
  for k in num_replicas:
    batches = [replicas.stack([draws[(i + r) % 4] for r in range(k)])
               for i in range(4)]
    active = jax.numpy.ones((k,), bool)
    impls = {"single": _stepper(lambda s, b: single_step(s, b),
                                jax.tree_util.tree_map(jax.numpy.copy, one), draws)}
    for program in PROGRAMS:
      variant = ml_collections.ConfigDict(config.to_dict())
      variant.num_replicas, variant.replica_program = k, program
      step, _ = train.make_replicated_steps(task, variant)
      stacked = train.stack_states([jax.tree_util.tree_map(jax.numpy.copy, one)
                                    for _ in range(k)])
      impls[program] = _stepper(step, stacked, batches, {}, active)
    samples = timing.time_interleaved(impls, rounds=rounds, calls=calls)
    rows.append({
        "replicas": k, "single_s": statistics.median(samples["single"]),
        "seconds": {p: statistics.median(samples[p]) for p in PROGRAMS},
        "speedup": {p: statistics.median(k * s / r for s, r in zip(
            samples["single"], samples[p])) for p in PROGRAMS},
        "examples_per_step": examples,
        "flops_per_step": matmul_flops(
            config, len(getattr(task, "vocabulary", None) or ()))})
  return rows


def main(argv):
  del argv
  FLAGS = flags.FLAGS
  peak = timing.gemm_peak_flops()
  print(f"device: {train._hardware()}; float32 GEMM peak "  # pylint: disable=protected-access
        f"{peak / 1e9:.0f} GFLOP/s")
  print("Examples/s (share of the GEMM peak); speed-up: K sequential runs' time "
        "over one program's (median of paired rounds).")
  print("| model | K | K sequential runs | vmap | vmap speed-up | unrolled | "
        "unrolled speed-up |\n|---|---|---|---|---|---|---|")
  for name in FLAGS.tasks:
    if name not in CONFIGS:
      raise app.UsageError(f"--tasks: unknown {name!r}; known are {list(CONFIGS)}")
    config = CONFIGS[name]()
    for row in measure(config, [int(k) for k in FLAGS.replicas], FLAGS.rounds,
                       FLAGS.calls):
      k, per_step, flops = row["replicas"], row["examples_per_step"], row[
          "flops_per_step"]

      def rate(seconds, count):
        return (f"{count * per_step / seconds:,.0f} "
                f"({count * flops / seconds / peak:.0%})")

      cells = [rate(row["single_s"], 1)]
      for program in PROGRAMS:
        cells += [rate(row["seconds"][program], k),
                  f"{row['speedup'][program]:.2f}x"]
      print(f"| {name} | {k} | " + " | ".join(cells) + " |", flush=True)


def define_flags() -> None:
  """The command line's flags (defined when run, so importing adds none)."""
  flags.DEFINE_list("tasks", ["adding", "adding_h16", "ptb"],
                    "Models to time: adding, adding_h16 (16 units), ptb.")
  flags.DEFINE_list("replicas", ["1", "2", "4", "8", "16"], "Values of K.")
  flags.DEFINE_integer("rounds", 5, "Interleaved rounds (medians over them).")
  flags.DEFINE_integer("calls", 20, "Timed steps per implementation per round.")


if __name__ == "__main__":
  define_flags()
  app.run(main)
