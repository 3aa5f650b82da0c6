"""Plots a tagging or sentiment run's confusion matrix and prints per-class
precision and recall.

  python -m experiments.confusion --workdir=workdirs/tagging_ud_he \
      [--split=test] [--best | --step=N] [--out=confusion.png]

Restores the run's checkpoint (`train.load_trained`: the latest, --step, or
with --best the one kept by config.best_metric), evaluates --split ('valid'
or 'test') in full, and draws the confusion matrix into --out (PNG): row k is
the gold class k, normalised to sum to 1 (the fraction of class k's tokens,
or examples, predicted as each class), with the class names (the run's
tags.txt for tagging; negative, positive for sentiment). Prints a Markdown
table of per-class gold and predicted counts, precision, recall and F1, with
the micro (accuracy) and macro averages (`tasks.class_metrics`). The
workdir is only read; a run still training there is not disturbed.

User errors (a bad flag, a workdir that is not a tagging or sentiment run, a
missing or damaged config.json or checkpoint, an --out in a missing folder)
are one `error: ...` line naming the flag or file (--debug: the traceback);
exit codes are experiments/cli.py's.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import NamedTuple

import jax
import numpy as np
from absl import app, flags, logging

import train
from experiments import cli
from tasks import class_metrics
from tasks import sentiment
from tasks import tagging

TASKS = ("tagging", "sentiment")
SPLITS = ("valid", "test")


class Confusion(NamedTuple):
  """A run's confusion counts on one split: matrix [K, K] (gold x
  predicted), names [K], and which run, split and checkpoint step."""
  matrix: np.ndarray
  names: list[str]
  workdir: str
  split: str
  step: int


def class_names(task_name: str, task) -> list[str]:
  """The classes of a built task, in id order."""
  if task_name == "tagging":
    return task.run_files[tagging.TAGS_FILE].decode("utf-8").splitlines()
  return list(sentiment.LABEL_NAMES)


def check_flags(workdir: str, split: str, step: int | None, best: bool,
                out: str) -> None:
  """UsageError naming the flag; FileNotFoundError for an --out whose folder
  is missing (checked before the run is loaded)."""
  if split not in SPLITS:
    raise cli.UsageError(f"--split: unknown split {split!r}; known splits are "
                         f"{list(SPLITS)}")
  if step is not None and step < 0:
    raise cli.UsageError(f"--step: expected an integer >= 0, got {step}")
  if best and step is not None:
    raise cli.UsageError("--step: give --step or --best, not both")
  if not out.strip():
    raise cli.UsageError("--out: empty; give the PNG to write")
  folder = os.path.dirname(os.path.abspath(out))
  if not os.path.isdir(folder):
    raise FileNotFoundError(errno.ENOENT, "No such directory for --out", folder)
  task_name = train.read_run_config(workdir).get("task")
  if task_name not in TASKS:
    raise cli.UsageError(f"--workdir: {workdir} is a run of task {task_name!r}; "
                         f"this tool reads {' and '.join(TASKS)} runs")


def confusion(workdir: str, split: str = "test", step: int | None = None,
              best: bool = False, replica: int | None = None) -> Confusion:
  """Evaluates `split` of the run in WORKDIR -> its Confusion."""
  config, task, params, step = train.load_trained(workdir, step, best=best,
                                                  replica=replica)
  _, eval_step = train.make_steps(task, train.make_optimizer(config))
  batches = task.eval_splits[split]
  total, carry = None, task.carry_for(batches[0])
  for batch in batches:
    sums, carry = eval_step(params, batch, carry)
    counts = np.asarray(jax.device_get(sums[class_metrics.CONFUSION]), np.float64)
    total = counts if total is None else total + counts
  names = class_names(config.task, task)
  class_metrics.check_confusion(total, names)
  return Confusion(total, names, workdir, split, step)


def plot(result: Confusion, out: str, title: str = "") -> None:
  """The row-normalised matrix as a heat map with class names, into `out`."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  rows = class_metrics.row_normalised(result.matrix)
  count = len(result.names)
  side = max(4.0, 0.45 * count + 2.0)
  fig, ax = plt.subplots(figsize=(side + 1.0, side))
  image = ax.imshow(rows, cmap="Blues", vmin=0.0, vmax=1.0)
  ax.set_xticks(range(count), result.names, rotation=90)
  ax.set_yticks(range(count), result.names)
  ax.set_xlabel("predicted")
  ax.set_ylabel("gold")
  for gold in range(count):
    for predicted in range(count):
      value = rows[gold, predicted]
      if value >= 0.005:
        ax.text(predicted, gold, f"{100 * value:.0f}", ha="center", va="center",
                fontsize=7, color="white" if value > 0.5 else "black")
  ax.set_title(title or f"{os.path.basename(os.path.normpath(result.workdir))} "
               f"{result.split}, step {result.step} (% of each gold row)",
               fontsize=9)
  fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
  fig.tight_layout()
  fig.savefig(out, dpi=120)
  plt.close(fig)


def table(result: Confusion) -> str:
  return class_metrics.markdown_table(result.matrix, result.names)


def run(workdir: str, split: str, step: int | None, best: bool, out: str,
        title: str = "", replica: int | None = None) -> Confusion:
  """Checks the flags, evaluates, writes `out` and prints the table."""
  check_flags(workdir, split, step, best, out)
  result = confusion(workdir, split, step, best, replica)
  plot(result, out, title)
  print(table(result), flush=True)
  print(f"wrote {out}", file=sys.stderr)
  return result


def define_flags(flag_values: flags.FlagValues) -> None:
  """The tool's flags, --debug included (defined only when the tool runs, so
  importing this module defines none)."""
  flags.DEFINE_string("workdir", None, "A tagging or sentiment training workdir.",
                      flag_values=flag_values)
  flags.DEFINE_string("split", "test", "The split to evaluate: valid or test.",
                      flag_values=flag_values)
  flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).",
                       flag_values=flag_values)
  flags.DEFINE_bool("best", False, "Use the checkpoint kept by the run's "
                    "config.best_metric (WORKDIR/best_checkpoint).",
                    flag_values=flag_values)
  flags.DEFINE_string("out", "confusion.png", "Output PNG path.",
                      flag_values=flag_values)
  flags.DEFINE_string("title", "", "Plot title (default: workdir, split, step).",
                      flag_values=flag_values)
  flags.DEFINE_integer("replica", None, "Which replica of a run of "
                       "num_replicas > 1 (required there).",
                       flag_values=flag_values)
  cli.define_debug_flag(flag_values)


def run_flags(argv: list[str], f: flags.FlagValues) -> None:
  """The tool on parsed flags `f`; exits with experiments/cli.py's code and
  one 'error: ...' line on a user error."""
  with cli.user_errors_exit(f.debug):
    if len(argv) > 1:
      raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    workdir = cli.check_workdir_flag(f.workdir)
    logging.set_verbosity(logging.WARNING)
    run(workdir, f.split, f.step, f.best, f.out, f.title, f.replica)


def main() -> None:
  define_flags(flags.FLAGS)
  app.run(lambda argv: run_flags(argv, flags.FLAGS), flags_parser=cli.parse_flags)


if __name__ == "__main__":
  main()
