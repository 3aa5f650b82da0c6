"""Prints a markdown results row per workdir, from its summary.json and config.json.

  python -m experiments.report WORKDIR [WORKDIR ...]
"""

from __future__ import annotations

import json
import os
import sys


def row(workdir: str) -> str:
  with open(os.path.join(workdir, "summary.json")) as f:
    summary = json.load(f)
  with open(os.path.join(workdir, "config.json")) as f:
    config = json.load(f)
  test = summary["metrics"]["test"]
  shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in test.items())
  minutes = summary["wall_time_s"] / 60
  return (f"| {config['task']} | {config.get('cell')} | "
          f"{config.get('seq_len', config.get('variant', ''))} | "
          f"{'yes' if summary['solved'] else 'no'} | {summary['examples_seen']:,} | "
          f"{shown} | {minutes:.1f} min | {summary['hardware']} |")


def main(argv):
  print("| task | cell | T / variant | solved | training sequences | test | "
        "wall time | hardware |")
  print("|---|---|---|---|---|---|---|---|")
  for workdir in argv[1:]:
    print(row(workdir))


if __name__ == "__main__":
  main(sys.argv)
