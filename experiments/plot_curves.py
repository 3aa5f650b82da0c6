"""Draws learning curves from metrics.jsonl files into one PNG.

  python -m experiments.plot_curves --out=curves.png --metric=mse \
      --split=valid LABEL=WORKDIR [LABEL=WORKDIR ...]

x axis: training examples seen; y axis: the metric on the split (log scale
with --log).
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

flags.DEFINE_string("out", "curves.png", "Output PNG path.")
flags.DEFINE_string("metric", "mse", "Metric name in metrics.jsonl.")
flags.DEFINE_string("split", "valid", "Split to plot.")
flags.DEFINE_string("title", "", "Plot title.")
flags.DEFINE_bool("log", True, "Log-scale y axis.")
flags.DEFINE_float("hline", None, "Draw a dashed reference line at this y.")


def read_curve(workdir: str, split: str, metric: str):
  path = os.path.join(workdir, "metrics.jsonl")
  xs, ys = [], []
  with open(path) as f:
    for line in f:
      record = json.loads(line)
      if record["split"] == split and metric in record:
        xs.append(record.get("examples_seen", record["step"]))
        ys.append(record[metric])
  if not xs:
    raise ValueError(f"{path}: no {split!r} records with metric {metric!r}")
  return xs, ys


def main(argv):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  runs = argv[1:]
  if not runs:
    raise app.UsageError("give at least one LABEL=WORKDIR")
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for run in runs:
    label, _, workdir = run.partition("=")
    if not workdir:
      raise app.UsageError(f"expected LABEL=WORKDIR, got {run!r}")
    xs, ys = read_curve(workdir, flags.FLAGS.split, flags.FLAGS.metric)
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
  app.run(main)
