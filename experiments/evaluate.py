"""Evaluates a trained run's checkpoint on every eval split, read-only.

  python -m experiments.evaluate --workdir=workdirs/ptb_small \
      [--step=N | --best] [--replica=R] [--set=eval_batch_size=1 ...]

Rebuilds the task from WORKDIR/config.json, applies each --set KEY=VALUE to
it (existing keys only; values parsed as JSON when they parse, else kept as
strings), restores checkpoint --step (default: the latest) and evaluates
every eval split in full. The results are printed and appended to
WORKDIR/evaluations.jsonl, one JSON object per split: step, split, the
metrics, and the overrides used. A run of K replicas (num_replicas) needs
--replica. A run still training in WORKDIR is not
disturbed.

User errors (a bad flag or --set, a missing or damaged config.json or
checkpoint, a read-only workdir) are one `error: ...` line naming the flag or
file (--debug: the traceback); exit codes are experiments/cli.py's.

Example: the paper's code reads the PTB test text as one stream (batch 1);
training evaluates it as 20 rows:
  python -m experiments.evaluate --workdir=workdirs/ptb_small \
      --set=eval_batch_size=1
"""

from __future__ import annotations

import json
import os
import time

import ml_collections
from absl import app, flags, logging

import train
import workdir as workdir_lib
from experiments import cli
from experiments.configs import rules

flags.DEFINE_string("workdir", None, "A training workdir.", required=True)
flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
flags.DEFINE_bool("best", False, "Evaluate the checkpoint kept by the run's "
                  "config.best_metric (WORKDIR/best_checkpoint) instead.")
flags.DEFINE_integer("replica", None, "Which replica of a run of "
                     "num_replicas > 1 to evaluate (0..K-1; required there).")
flags.DEFINE_multi_string("set", [], "KEY=VALUE config override, repeatable.")
cli.define_debug_flag()


def parse_overrides(items: list[str]) -> dict:
  overrides = {}
  for item in items:
    key, sep, text = item.partition("=")
    if not sep or not key:
      raise cli.UsageError(f"--set: expected KEY=VALUE, got {item!r}")
    try:
      overrides[key] = json.loads(text)
    except json.JSONDecodeError:
      overrides[key] = text
  return overrides


def check_run_config(workdir: str, overrides: dict) -> None:
  """CorruptFileError naming WORKDIR/config.json when it does not parse;
  rules.ConfigError when an override breaks its key's rule (e.g.
  eval_batch_size=0). Unknown keys and a missing file are load_trained's."""
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    return
  fields = cli.read_json(path)
  if not isinstance(fields, dict):
    raise cli.CorruptFileError(f"{path}: expected a JSON object, got "
                               f"{type(fields).__name__}")
  config = ml_collections.ConfigDict({**fields, **overrides})
  for key in overrides:
    if key in fields:
      rules.check_key(config, key)


def main(argv):
  FLAGS = flags.FLAGS
  with cli.user_errors_exit(FLAGS.debug):
    if len(argv) > 1:
      raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    workdir = cli.check_workdir_flag(FLAGS.workdir)
    overrides = parse_overrides(FLAGS.set)
    check_run_config(workdir, overrides)
    evaluate(workdir, overrides)


def evaluate(workdir: str, overrides: dict) -> None:
  """Evaluates the checkpoint the flags name; appends to evaluations.jsonl."""
  FLAGS = flags.FLAGS
  logging.set_verbosity(logging.WARNING)
  config, task, params, step = train.load_trained(
      workdir, FLAGS.step, overrides, best=FLAGS.best, replica=FLAGS.replica)
  _, eval_step = train.make_steps(task, train.make_optimizer(config))
  start = time.time()
  results = train.evaluate(task, eval_step, params)
  seconds = time.time() - start
  path = os.path.join(os.path.abspath(workdir), "evaluations.jsonl")
  with workdir_lib.lock(workdir, purpose="evaluating it"), open(path, "a") as f:
    for split, metrics in results.items():
      record = {"step": step, "split": split, **metrics,
                "overrides": overrides, "checkpoint": "best" if FLAGS.best
                else "checkpoints", "eval_seconds": round(seconds, 1),
                **({} if FLAGS.replica is None else {"replica": FLAGS.replica})}
      f.write(json.dumps(record) + "\n")
      print(json.dumps(record), flush=True)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
