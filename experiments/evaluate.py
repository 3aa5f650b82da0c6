"""Evaluates a trained run's checkpoint on every eval split, read-only.

  python -m experiments.evaluate --workdir=workdirs/ptb_small \
      [--step=N | --best] [--set=eval_batch_size=1 ...]

Rebuilds the task from WORKDIR/config.json, applies each --set KEY=VALUE to
it (existing keys only; values parsed as JSON when they parse, else kept as
strings), restores checkpoint --step (default: the latest) and evaluates
every eval split in full. The results are printed and appended to
WORKDIR/evaluations.jsonl, one JSON object per split: step, split, the
metrics, and the overrides used. A run still training in WORKDIR is not
disturbed.

Example: the paper's code reads the PTB test text as one stream (batch 1);
training evaluates it as 20 rows:
  python -m experiments.evaluate --workdir=workdirs/ptb_small \
      --set=eval_batch_size=1
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags, logging

import train
from experiments import launch

flags.DEFINE_string("workdir", None, "A training workdir.", required=True)
flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
flags.DEFINE_bool("best", False, "Evaluate the checkpoint kept by the run's "
                  "config.best_metric (WORKDIR/best_checkpoint) instead.")
flags.DEFINE_multi_string("set", [], "KEY=VALUE config override, repeatable.")


def parse_overrides(items: list[str]) -> dict:
  overrides = {}
  for item in items:
    key, sep, text = item.partition("=")
    if not sep or not key:
      raise ValueError(f"--set: expected KEY=VALUE, got {item!r}")
    try:
      overrides[key] = json.loads(text)
    except json.JSONDecodeError:
      overrides[key] = text
  return overrides


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  FLAGS = flags.FLAGS
  with launch.user_errors_exit():
    overrides = parse_overrides(FLAGS.set)
    config, task, params, step = train.load_trained(
        FLAGS.workdir, FLAGS.step, overrides, best=FLAGS.best)
  _, eval_step = train.make_steps(task, train.make_optimizer(config))
  start = time.time()
  results = train.evaluate(task, eval_step, params)
  seconds = time.time() - start
  path = os.path.join(os.path.abspath(FLAGS.workdir), "evaluations.jsonl")
  with open(path, "a") as f:
    for split, metrics in results.items():
      record = {"step": step, "split": split, **metrics,
                "overrides": overrides, "checkpoint": "best" if FLAGS.best
                else "checkpoints", "eval_seconds": round(seconds, 1)}
      f.write(json.dumps(record) + "\n")
      print(json.dumps(record), flush=True)


if __name__ == "__main__":
  app.run(main)
