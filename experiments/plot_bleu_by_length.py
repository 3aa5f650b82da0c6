"""BLEU by source sentence length for several translation runs (Bahdanau et
al. 2015, figure 2), from the WORKDIR/bleu_test.json files that
experiments/nmt.py writes.

  python -m experiments.plot_bleu_by_length \
      --workdirs=workdirs/nmt_encdec,workdirs/nmt_encdec_rev,workdirs/nmt_attention \
      --out=docs/results/nmt_bleu_by_length.png

Plots BLEU and chrF side by side and prints both as Markdown tables (per run
and decoding: the whole split's score and the score per length bucket).

Then a robustness-to-length table (--bootstrap resamples, 0 to skip): each
run's BLEU on long sources (--long_words) as a fraction of its BLEU on short
ones (--short_words), and for every later run the growth of its BLEU ratio
to the first run from short to long sources, each with a 95% bootstrap
interval (sentences resampled within the two groups). Bahdanau et al.'s
finding is that the first fraction is larger with attention and so the
ratio grows (> 1).
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import app, flags

from experiments import cli



def define_flags() -> None:
  """The command's flags (defined when it runs, so importing this module for
  its functions defines none)."""
  flags.DEFINE_list("workdirs", None, "Workdirs holding bleu_<split>.json.",
                    required=True)
  flags.DEFINE_string("split", "test", "Which bleu_<split>.json to read.")
  flags.DEFINE_string("out", "docs/results/nmt_bleu_by_length.png",
                      "The PNG to write.")
  flags.DEFINE_string("decode", "beam5", "Decoding to plot (greedy, beam5, "
                      "...); both are in the table.")
  flags.DEFINE_integer("bootstrap", 1000, "Resamples for the robustness-to-"
                       "length table (0: skip it).")
  flags.DEFINE_string("short_words", "3-9", "Short sources, in words (low-high).")
  flags.DEFINE_string("long_words", "10-50", "Long sources, in words (low-high).")
  cli.define_debug_flag()


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


def _sentence_stats(bleu, hypotheses, references) -> np.ndarray:
  """[N, 2 + 2 * 4] sacrebleu's BLEU statistics of each sentence (lengths,
  n-gram matches and totals; a placeholder <k> as one word, as in nmt)."""
  from tasks import nmt  # pylint: disable=g-import-not-at-top
  hyps = nmt._placeholders_as_words(hypotheses)  # pylint: disable=protected-access
  refs = nmt._placeholders_as_words(references)  # pylint: disable=protected-access
  return np.array([bleu._extract_corpus_statistics([h], [[r]])[0]  # pylint: disable=protected-access
                   for h, r in zip(hyps, refs)], dtype=np.int64)


def _bleu(bleu, stats: np.ndarray) -> float:
  """Corpus BLEU of the sentences whose statistics are the rows of stats."""
  return bleu._compute_score_from_stats(list(stats.sum(0))).score  # pylint: disable=protected-access


def length_robustness(sources, hypotheses: dict, references, short=(3, 9),
                      long=(10, 50), samples: int = 1000, seed: int = 0) -> dict:
  """BLEU kept from short to long sources, with 95% bootstrap intervals.

  hypotheses: {run label: hypotheses}, the first run being the baseline.
  Returns {'short': n, 'long': n, 'runs': [{label, bleu_short, bleu_long,
  kept: (median, low, high), growth: (median, low, high) or None}]}, where
  kept = BLEU_long / BLEU_short and growth = (BLEU_long / baseline's) /
  (BLEU_short / baseline's).
  """
  words = np.array([len(s.split()) for s in sources])
  groups = [np.flatnonzero((words >= low) & (words <= high)) for low, high in (short, long)]
  if not all(len(g) for g in groups):
    raise ValueError(f"short/long words: {short} and {long} must both hold "
                     f"sources; they hold {[len(g) for g in groups]}")
  from tasks import nmt  # pylint: disable=g-import-not-at-top
  bleu = nmt._sacrebleu().metrics.BLEU()  # pylint: disable=protected-access
  stats = {label: _sentence_stats(bleu, h, references)
           for label, h in hypotheses.items()}
  rng = np.random.default_rng(seed)
  draws = [[rng.choice(g, len(g)) for g in groups] for _ in range(samples)]

  def kept(label, picks):
    scores = [_bleu(bleu, stats[label][p]) for p in picks]
    return scores[1] / scores[0] if scores[0] > 0 else float("nan")

  interval = lambda values: tuple(float(v) for v in np.nanpercentile(values, [50, 2.5, 97.5]))
  baseline = next(iter(hypotheses))
  base_kept = [kept(baseline, picks) for picks in draws]
  runs = []
  for label in hypotheses:
    sample = [kept(label, picks) for picks in draws]
    runs.append({
        "label": label, "bleu_short": _bleu(bleu, stats[label][groups[0]]),
        "bleu_long": _bleu(bleu, stats[label][groups[1]]), "kept": interval(sample),
        "growth": None if label == baseline else interval(
            np.array(sample) / np.array(base_kept))})
  return {"short": len(groups[0]), "long": len(groups[1]), "short_words": short,
          "long_words": long, "runs": runs}


def robustness_markdown(result: dict) -> str:
  (s_low, s_high), (l_low, l_high) = result["short_words"], result["long_words"]
  baseline = result["runs"][0]["label"]
  lines = [f"| model | BLEU {s_low}-{s_high} words (n={result['short']}) | "
           f"BLEU {l_low}-{l_high} words (n={result['long']}) | long / short "
           f"[95% CI] | ratio to {baseline}: long / short [95% CI] |",
           "|---|---|---|---|---|"]
  show = lambda v: f"{v[0]:.2f} [{v[1]:.2f}, {v[2]:.2f}]"
  for run in result["runs"]:
    growth = "(baseline)" if run["growth"] is None else show(run["growth"])
    lines.append(f"| {run['label']} | {run['bleu_short']:.1f} | {run['bleu_long']:.1f} "
                 f"| {show(run['kept'])} | {growth} |")
  return "\n".join(lines)


def _words_range(flag: str, spec: str) -> tuple[int, int]:
  """'3-9' -> (3, 9), parsed as one seq2seq length bucket."""
  from tasks import seq2seq  # pylint: disable=g-import-not-at-top
  try:
    ranges = seq2seq.parse_length_buckets(spec)
  except ValueError:
    ranges = ()
  if len(ranges) != 1:
    raise ValueError(f"--{flag}: expected one word range such as '3-9', got {spec!r}")
  return ranges[0]


def robustness_of(workdirs, reports, split: str, decode: str, **kwargs) -> dict:
  """length_robustness of the runs' saved hypotheses on their test split."""
  import train  # pylint: disable=g-import-not-at-top
  from tasks import nmt  # pylint: disable=g-import-not-at-top
  config = train.read_run_config(workdirs[0])
  key = "test_split" if split == "test" else "valid_split"
  pairs = nmt.load_pairs(config, key)[:reports[0]["sentences"]]
  hypotheses = {}
  for workdir, report in zip(workdirs, reports):
    path = os.path.join(workdir, f"hypotheses_{split}_{decode}.txt")
    with open(path, encoding="utf-8") as f:
      lines = f.read().split("\n")[:len(pairs)]
    if len(lines) != len(pairs) or report["sentences"] != len(pairs):
      raise ValueError(f"workdirs: {path} has {len(lines)} lines for "
                       f"{len(pairs)} sentences; rerun translate --evaluate")
    hypotheses[LABELS.get(report["config"].get("variant"), workdir)] = lines
  return length_robustness([s for s, _ in pairs], hypotheses,
                           [t for _, t in pairs], **kwargs)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  with cli.user_errors_exit(f.debug):
    run(f)


def run(f) -> None:
  reports = [read(w, f.split) for w in f.workdirs]
  plot(reports, f.decode, f.out)
  print(markdown(reports))
  if f.bootstrap:
    result = robustness_of(f.workdirs, reports, f.split, f.decode,
                           short=_words_range("short_words", f.short_words),
                           long=_words_range("long_words", f.long_words),
                           samples=f.bootstrap)
    print(f"\nRobustness to length ({f.decode}, {f.bootstrap} bootstrap resamples):\n")
    print(robustness_markdown(result))
  print(f"\nwrote {f.out}")


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
