"""Descriptive statistics of tokenised corpus splits (sizes, lengths, unknown words).

  stats = describe({"train": [["a", "b"], ...], "validation": [...], "test": [...]})

Lengths are tokens per example; the unknown-word rate of a split is the
fraction of its tokens (running words, not types) missing from a
vocabulary of the train split's words seen at least `min_count` times.
"""

from __future__ import annotations

import argparse
import collections
from typing import Iterable, Mapping, Sequence

import numpy as np

PERCENTILES = (50, 90, 99)
MIN_COUNTS = (1, 2)


def length_percentiles(lengths: Sequence[int]) -> dict[str, int]:
  """{'p50', 'p90', 'p99', 'max'} of the lengths (nearest-rank, integers)."""
  if not len(lengths):
    raise ValueError("lengths: expected at least one length, got none")
  values = np.asarray(lengths)
  out = {f"p{p}": int(np.percentile(values, p, method="inverted_cdf")) for p in PERCENTILES}
  out["max"] = int(values.max())
  return out


def train_counts(examples: Iterable[Sequence[str]]) -> collections.Counter:
  return collections.Counter(token for tokens in examples for token in tokens)


def unknown_rate(counts: Mapping[str, int], examples: Iterable[Sequence[str]],
                 min_count: int = 1) -> float:
  """Fraction of the tokens in `examples` seen fewer than `min_count` times
  in `counts` (the train split's word counts)."""
  if min_count < 1:
    raise ValueError(f"min_count: expected >= 1, got {min_count}")
  total = unknown = 0
  for tokens in examples:
    total += len(tokens)
    unknown += sum(counts.get(token, 0) < min_count for token in tokens)
  return unknown / total if total else 0.0


def describe(splits: Mapping[str, Sequence[Sequence[str]]],
             train_split: str = "train") -> dict[str, dict]:
  """{split: {'examples', 'tokens', 'p50', 'p90', 'p99', 'max',
  'unk@1', 'unk@2' (held-out splits only)}} of tokenised splits."""
  if train_split not in splits:
    raise ValueError(f"train_split: {train_split!r} is not one of {list(splits)}")
  counts = train_counts(splits[train_split])
  out = {}
  for split, examples in splits.items():
    row = {"examples": len(examples), "tokens": sum(len(t) for t in examples)}
    row.update(length_percentiles([len(t) for t in examples]))
    if split != train_split:
      for min_count in MIN_COUNTS:
        row[f"unk@{min_count}"] = unknown_rate(counts, examples, min_count)
    out[split] = row
  out[train_split]["vocab@1"] = len(counts)
  out[train_split]["vocab@2"] = sum(c >= 2 for c in counts.values())
  return out


def markdown_rows(name: str, stats: Mapping[str, Mapping], extra: Mapping[str, str]
                  | None = None) -> list[str]:
  """One markdown table row per split: corpus, split, examples, tokens,
  length p50/p90/p99/max, unknown rates (%), then `extra[split]`."""
  rows = []
  for split, row in stats.items():
    unk = (f"{100 * row['unk@1']:.2f} | {100 * row['unk@2']:.2f}" if "unk@1" in row
           else f"vocab {row['vocab@1']:,} | vocab {row['vocab@2']:,}")
    rows.append(f"| {name} | {split} | {row['examples']:,} | {row['tokens']:,} | "
                f"{row['p50']} / {row['p90']} / {row['p99']} / {row['max']} | {unk} |"
                + (f" {extra[split]} |" if extra else ""))
  return rows


def parse_stats_flags(description: str, argv: Sequence[str] | None,
                      **extra_flags: str) -> argparse.Namespace:
  """The `--stats` command line of a corpus module: --stats (required),
  --data_dir, and boolean flags extra_flags={name: help}."""
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument("--stats", action="store_true", help="print the split statistics")
  parser.add_argument("--data_dir", default=None)
  for name, help_text in extra_flags.items():
    parser.add_argument(f"--{name}", action="store_true", help=help_text)
  args = parser.parse_args(argv)
  if not args.stats:
    parser.error("nothing to do: pass --stats")
  return args
