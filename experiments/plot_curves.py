"""Draws learning curves from metrics.jsonl files into one PNG.

  python -m experiments.plot_curves --out=curves.png --metric=mse \
      --split=valid LABEL=WORKDIR [LABEL=WORKDIR ...]

x axis: training examples seen; y axis: the metric on the split (log scale
with --log). A missing or damaged metrics.jsonl, a run without the metric or
an unwritable --out is one `error: ...` line naming the file (--debug: the
traceback); exit codes are experiments/cli.py's.
"""

from __future__ import annotations

import os
import sys
from typing import NamedTuple

from absl import app, flags

from experiments import cli

flags.DEFINE_string("out", "curves.png", "Output PNG path.")
flags.DEFINE_string("metric", "mse", "Metric name in metrics.jsonl.")
flags.DEFINE_string("split", "valid", "Split to plot.")
flags.DEFINE_string("title", "", "Plot title.")
flags.DEFINE_bool("log", True, "Log-scale y axis.")
flags.DEFINE_float("hline", None, "Draw a dashed reference line at this y.")
cli.define_debug_flag()


def read_curve(workdir: str, split: str, metric: str):
  """-> (examples seen, metric values) of `split` in WORKDIR/metrics.jsonl."""
  path = os.path.join(workdir, "metrics.jsonl")
  xs, ys = [], []
  for number, record in enumerate(cli.read_jsonl(path), 1):
    if "split" not in record or "step" not in record:
      raise cli.CorruptFileError(f"{path} record {number}: no 'split' or 'step' "
                                 f"entry; the file is damaged")
    if record["split"] == split and metric in record:
      xs.append(record.get("examples_seen", record["step"]))
      ys.append(record[metric])
  if not xs:
    raise ValueError(f"{path}: no {split!r} records with metric {metric!r}")
  return xs, ys


class LabeledRun(NamedTuple):
  label: str
  workdir: str


def parse_runs(args: list[str]) -> list[LabeledRun]:
  """LABEL=WORKDIR arguments -> runs; UsageError if malformed."""
  if not args:
    raise cli.UsageError("give at least one LABEL=WORKDIR")
  runs = []
  for arg in args:
    label, _, workdir = arg.partition("=")
    if not workdir.strip():
      raise cli.UsageError(f"expected LABEL=WORKDIR, got {arg!r}")
    runs.append(LabeledRun(label, workdir))
  return runs


def main(argv):
  with cli.user_errors_exit(flags.FLAGS.debug):
    if not flags.FLAGS.out.strip():
      raise cli.UsageError("--out: empty; give the PNG to write")
    plot(parse_runs(argv[1:]))


def plot(runs: list[LabeledRun]) -> None:
  """Reads every curve, then draws them into --out."""
  curves = [(run.label, read_curve(run.workdir, flags.FLAGS.split, flags.FLAGS.metric))
            for run in runs]
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for label, (xs, ys) in curves:
    ax.plot(xs, ys, label=label)
  if flags.FLAGS.hline is not None:
    ax.axhline(flags.FLAGS.hline, color="gray", linestyle="--", linewidth=1)
  if flags.FLAGS.log:
    ax.set_yscale("log")
  ax.set_xlabel("training sequences")
  ax.set_ylabel(f"{flags.FLAGS.split} {flags.FLAGS.metric}")
  ax.set_title(flags.FLAGS.title)
  ax.legend()
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(flags.FLAGS.out, dpi=120)
  print(f"wrote {flags.FLAGS.out}", file=sys.stderr)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
