"""BLEU by source sentence length for several translation runs (Bahdanau et
al. 2015, figure 2), from the WORKDIR/bleu_test.json files that
experiments/nmt.py writes.

  python -m experiments.plot_bleu_by_length \
      --workdirs=workdirs/nmt_encdec,workdirs/nmt_encdec_rev,workdirs/nmt_attention \
      --out=docs/nmt_bleu_by_length.png

Plots BLEU and chrF side by side and prints both as Markdown tables (per run
and decoding: the whole split's score and the score per length bucket).
"""

from __future__ import annotations

import json
import os

from absl import app, flags

flags.DEFINE_list("workdirs", None, "Workdirs holding bleu_<split>.json.",
                  required=True)
flags.DEFINE_string("split", "test", "Which bleu_<split>.json to read.")
flags.DEFINE_string("out", "docs/nmt_bleu_by_length.png", "The PNG to write.")
flags.DEFINE_string("decode", "beam5", "Decoding to plot (greedy, beam5, ...); "
                    "both are in the table.")

LABELS = {"encdec": "RNNencdec (no attention)",
          "encdec_rev": "RNNencdec, source reversed",
          "attention": "RNNsearch (Bahdanau attention)",
          "luong": "Luong attention (general, input feeding)"}


def read(workdir: str, split: str) -> dict:
  path = os.path.join(workdir, f"bleu_{split}.json")
  if not os.path.exists(path):
    raise ValueError(f"workdirs: {path} does not exist; run experiments.nmt or "
                     f"experiments.translate --evaluate first")
  with open(path) as f:
    report = json.load(f)
  with open(os.path.join(workdir, "config.json")) as f:
    report["config"] = json.load(f)
  return report


def markdown(reports: list[dict]) -> str:
  """Two Markdown tables, BLEU and chrF per source-length bucket, one row per
  run and decoding (with the whole test split's score)."""
  names = list(reports[0]["decodes"])
  buckets = [r["words"] for r in reports[0]["decodes"][names[0]]["by_length"]]
  counts = [r["sentences"] for r in reports[0]["decodes"][names[0]]["by_length"]]
  tables = []
  for metric, title in (("bleu", "BLEU"), ("chrf", "chrF")):
    head = (f"| model | decoding | {title} | " +
            " | ".join(f"{title} {b} words (n={n})" for b, n in zip(buckets, counts)) + " |")
    lines = [head, "|" + "---|" * (3 + len(buckets))]
    for report in reports:
      label = LABELS.get(report["config"].get("variant"), report["workdir"])
      for name, decode in report["decodes"].items():
        cells = " | ".join(f"{r[metric]:.1f}" for r in decode["by_length"])
        lines.append(f"| {label} | {name} | {decode[metric]:.2f} | {cells} |")
    tables.append("\n".join(lines))
  return "\n\n".join(tables)


def plot(reports: list[dict], decode: str, out: str) -> None:
  """BLEU (left) and chrF (right) by source-length bucket, one line per run."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  for report in reports:
    if decode not in report["decodes"]:
      raise ValueError(f"decode: {report['workdir']} has {list(report['decodes'])}, "
                       f"not {decode!r}")
  fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.0))
  rows = reports[0]["decodes"][decode]["by_length"]
  for ax, metric, title in zip(axes, ("bleu", "chrf"), ("BLEU", "chrF")):
    for report in reports:
      label = LABELS.get(report["config"].get("variant"), report["workdir"])
      ax.plot(range(len(rows)), [r[metric] for r in report["decodes"][decode]["by_length"]],
              marker="o", label=label)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{r['words']}\n(n={r['sentences']})" for r in rows])
    ax.set_xlabel("source sentence length (English words)")
    ax.set_ylabel(f"{title} ({decode})")
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  fig.suptitle("en->fr gettext corpus, test split: scores by source length")
  fig.tight_layout()
  os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
  fig.savefig(out, dpi=110)


def main(argv):
  del argv
  reports = [read(w, flags.FLAGS.split) for w in flags.FLAGS.workdirs]
  plot(reports, flags.FLAGS.decode, flags.FLAGS.out)
  print(markdown(reports))
  print(f"\nwrote {flags.FLAGS.out}")


if __name__ == "__main__":
  app.run(main)
