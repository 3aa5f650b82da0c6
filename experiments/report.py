"""Prints a markdown results row per workdir, from its summary.json and config.json.

  python -m experiments.report [--debug] WORKDIR [WORKDIR ...]

A workdir without summary.json (the run has not finished), a damaged file or a
file without the entries a row needs is one `error: ...` line naming the file
(--debug: the traceback); exit codes are experiments/cli.py's.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import sys
from typing import Any

from experiments import cli

HEADER = ("| task | cell | T / variant | solved | training sequences | test | "
          "wall time | hardware |\n|---|---|---|---|---|---|---|---|")


@dataclasses.dataclass(frozen=True)
class ReportArgs:
  workdirs: tuple[str, ...]
  debug: bool


def _entry(record: dict[str, Any], path: str, *keys: str,
           kind: type | tuple[type, ...] = object) -> Any:
  """record[keys[0]][keys[1]]..., of type `kind`; CorruptFileError naming the
  file and the entry otherwise."""
  value = record
  for depth, key in enumerate(keys, 1):
    if not isinstance(value, dict) or key not in value:
      raise cli.CorruptFileError(f"{path}: no '{'/'.join(keys[:depth])}' entry; "
                                 f"the file is damaged or not a run's")
    value = value[key]
  if not isinstance(value, kind) or isinstance(value, bool) and kind is not object:
    raise cli.CorruptFileError(f"{path}: '{'/'.join(keys)}' is {value!r}, not "
                               f"what a run writes; the file is damaged")
  return value


def _read_run_file(workdir: str, name: str) -> dict[str, Any]:
  path = os.path.join(workdir, name)
  if os.path.isdir(workdir) and not os.path.exists(path):
    why = " (the run has not finished)" if name == "summary.json" else ""
    raise FileNotFoundError(errno.ENOENT, f"No such file or directory{why}", path)
  record = cli.read_json(path)
  if not isinstance(record, dict):
    raise cli.CorruptFileError(f"{path}: expected a JSON object, got "
                               f"{type(record).__name__}")
  return record


def row(workdir: str) -> str:
  summary_path = os.path.join(workdir, "summary.json")
  config_path = os.path.join(workdir, "config.json")
  summary = _read_run_file(workdir, "summary.json")
  config = _read_run_file(workdir, "config.json")
  test = _entry(summary, summary_path, "metrics", "test", kind=dict)
  shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in test.items())
  minutes = _entry(summary, summary_path, "wall_time_s", kind=(int, float)) / 60
  solved = _entry(summary, summary_path, "solved")
  examples = _entry(summary, summary_path, "examples_seen", kind=int)
  hardware = _entry(summary, summary_path, "hardware")
  task = _entry(config, config_path, "task")
  return (f"| {task} | {config.get('cell')} | "
          f"{config.get('seq_len', config.get('variant', ''))} | "
          f"{'yes' if solved else 'no'} | {examples:,} | "
          f"{shown} | {minutes:.1f} min | {hardware} |")


def parse_args(argv: list[str]) -> ReportArgs:
  """UsageError for an unknown flag or no workdir."""
  debug, workdirs = False, []
  for arg in argv[1:]:
    if cli.debug_requested(["", arg]):
      debug = True
    elif arg.startswith("-"):
      raise cli.UsageError(f"unknown flag {arg}; usage: python -m "
                           f"experiments.report [--debug] WORKDIR [WORKDIR ...]")
    else:
      workdirs.append(cli.check_workdir_flag(arg, "WORKDIR"))
  if not workdirs:
    raise cli.UsageError("give at least one WORKDIR")
  return ReportArgs(workdirs=tuple(workdirs), debug=debug)


def main(argv: list[str]) -> int:
  """Prints the table; returns the exit code (rows are read before printing)."""
  if {"-h", "--help", "-help"}.intersection(argv[1:]):
    print(__doc__.strip())
    return cli.EXIT_OK
  try:
    args = parse_args(argv)
    rows = [row(workdir) for workdir in args.workdirs]
  except (Exception, KeyboardInterrupt) as error:  # pylint: disable=broad-except
    return cli.report(error, cli.debug_requested(argv))
  print(HEADER)
  for line in rows:
    print(line)
  return cli.EXIT_OK


if __name__ == "__main__":
  sys.exit(main(sys.argv))
