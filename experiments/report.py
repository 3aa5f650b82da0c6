"""Prints a markdown results row per workdir, or the table of a sweep.

  python -m experiments.report [--debug] WORKDIR [WORKDIR ...]
  python -m experiments.report [--debug] --sweep=DIR [--storage=URL]

A row per workdir comes from its summary.json and config.json. A workdir
without summary.json (the run has not finished), a damaged file or a file
without the entries a row needs is one `error: ...` line naming the file
(--debug: the traceback); exit codes are experiments/cli.py's.

--sweep=DIR reports a sweep of experiments/sweep.py: a markdown table of its
trials (state, swept values, the metric, as mean ± sd for replicated runs,
steps, wall time) and the best trial, and writes DIR/report/metric_vs_KEY.png
per swept key and DIR/report/curves.png (the metric against the step for the
5 best trials). --storage is needed only when the study's RDB URL has a
password (DIR/sweep.json keeps it masked). A DIR that is not a sweep is one
`error: ...` line.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import statistics
import re
import sys
from typing import Any

from experiments import cli

HEADER = ("| task | cell | T / variant | solved | training sequences | test | "
          "wall time | hardware |\n|---|---|---|---|---|---|---|---|")


@dataclasses.dataclass(frozen=True)
class ReportArgs:
  workdirs: tuple[str, ...]
  debug: bool
  sweep: str | None = None
  storage: str | None = None


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
  """One markdown row; a run of K replicas shows 'k/K' solved, the mean
  sequences (+- sd) and each test metric as mean +- sd over the replicas."""
  summary_path = os.path.join(workdir, "summary.json")
  config_path = os.path.join(workdir, "config.json")
  summary = _read_run_file(workdir, "summary.json")
  config = _read_run_file(workdir, "config.json")
  test = _entry(summary, summary_path, "metrics", "test", kind=dict)
  test_sd = summary.get("metrics_sd", {}).get("test", {})
  shown = ", ".join(_shown(k, v, test_sd.get(k)) for k, v in test.items())
  minutes = _entry(summary, summary_path, "wall_time_s", kind=(int, float)) / 60
  solved = _entry(summary, summary_path, "solved")
  examples = _entry(summary, summary_path, "examples_seen", kind=int)
  hardware = _entry(summary, summary_path, "hardware")
  task = _entry(config, config_path, "task")
  solved_cell, examples_cell = "yes" if solved else "no", f"{examples:,}"
  if "replicas" in summary:
    replicas = _entry(summary, summary_path, "replicas", kind=list)
    seen = [_entry(r, summary_path, "examples_seen", kind=int) for r in replicas]
    solved_cell = f"{sum(bool(r.get('solved')) for r in replicas)}/{len(replicas)}"
    examples_cell = (f"{statistics.mean(seen):,.0f} ± {statistics.stdev(seen):,.0f} "
                     f"({len(replicas)} seeds)")
  return (f"| {task} | {config.get('cell')} | "
          f"{config.get('seq_len', config.get('variant', ''))} | "
          f"{solved_cell} | {examples_cell} | "
          f"{shown} | {minutes:.1f} min | {hardware} |")


def _shown(name: str, value: Any, sd: float | None) -> str:
  if not isinstance(value, float):
    return f"{name} {value}"
  return f"{name} {value:.4g}" + ("" if sd is None else f" ± {sd:.2g}")


# ----------------------------------------------------------------------------
# --sweep=DIR: a sweep's trials (experiments/sweep.py).

TOP_CURVES = 5


@dataclasses.dataclass(frozen=True)
class TrialRow:
  """One trial of a sweep as the table shows it.

  value: METRIC (the pruned step's value for a pruned trial; None for a
  failed one); sd: its standard deviation over replicas, when the run has
  them.
  """
  number: int
  state: str
  params: dict[str, Any]
  value: float | None
  sd: float | None
  steps: int | None
  wall_s: float | None
  workdir: str


def _read_sweep_record(sweep_dir: str) -> dict[str, Any]:
  """DIR/sweep.json; UsageError when DIR is not a sweep's directory."""
  path = os.path.join(sweep_dir, "sweep.json")
  if not os.path.isfile(path):
    what = "does not exist" if not os.path.exists(sweep_dir) else "has no sweep.json"
    raise cli.UsageError(f"--sweep: {sweep_dir} is not a sweep directory (it {what}; "
                         f"python -m experiments.sweep --workdir=DIR makes one)")
  record = cli.read_json(path)
  for key, kind in (("study_name", str), ("storage", str), ("metric", str),
                    ("space", dict)):
    _entry(record, path, key, kind=kind)
  return record


def _load_study(sweep_dir: str, record: dict[str, Any], storage_url: str | None):
  from experiments import sweep  # pylint: disable=g-import-not-at-top
  import optuna  # pylint: disable=g-import-not-at-top
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  if storage_url is None and record["storage"] != sweep.JOURNAL_FILE:
    if "***" in record["storage"]:
      raise cli.UsageError(f"--storage: the study is in {record['storage']}; give "
                           f"its URL with the password")
    storage_url = record["storage"]
  if storage_url is None and not os.path.isfile(os.path.join(sweep_dir,
                                                             sweep.JOURNAL_FILE)):
    raise FileNotFoundError(errno.ENOENT, "No such file or directory (the sweep "
                            "has not started)", os.path.join(sweep_dir,
                                                             sweep.JOURNAL_FILE))
  storage = sweep.open_storage(sweep_dir, storage_url)
  try:
    return optuna.load_study(study_name=record["study_name"], storage=storage)
  except KeyError:
    raise cli.UsageError(f"--sweep: the storage holds no study "
                         f"{record['study_name']!r}") from None


def _optional_json(path: str) -> dict[str, Any] | None:
  if not os.path.isfile(path):
    return None
  value = cli.read_json(path)
  return value if isinstance(value, dict) else None


def _metric_sd(summary: dict[str, Any] | None, config: dict[str, Any] | None,
               metric) -> float | None:
  """The sd of the trial's objective over replicas, if the summary has one."""
  if not summary:
    return None
  if (config or {}).get("best_metric") == metric.spec and "best" in summary:
    return (summary["best"] or {}).get("sd")
  return summary.get("metrics_sd", {}).get(metric.split, {}).get(metric.name)


def _trial_row(trial, metric, retried_as: dict[int, int]) -> TrialRow:
  """The row of one optuna trial, read from the study and its workdir."""
  workdir = trial.user_attrs.get("workdir", "")
  summary = _optional_json(os.path.join(workdir, "summary.json")) if workdir else None
  config = _optional_json(os.path.join(workdir, "config.json")) if workdir else None
  state = trial.state.name
  value = trial.value if state == "COMPLETE" else None
  if trial.user_attrs.get("interrupted"):
    later = retried_as.get(trial.number)
    state = "interrupted" + (f", retried as {later}" if later is not None else "")
    summary = None
  elif state == "PRUNED" and trial.intermediate_values:
    value = trial.intermediate_values[max(trial.intermediate_values)]
  steps = summary.get("step") if summary else (
      max(trial.intermediate_values) if trial.intermediate_values else None)
  wall = summary.get("wall_time_s") if summary else None
  if (wall is None and trial.datetime_start and trial.datetime_complete
      and not trial.user_attrs.get("interrupted")):
    wall = (trial.datetime_complete - trial.datetime_start).total_seconds()
  return TrialRow(number=trial.number, state=state, params=dict(trial.params),
                  value=value, sd=None if value is None else
                  _metric_sd(summary, config, metric),
                  steps=steps, wall_s=wall, workdir=workdir)


def _cell(value: Any) -> str:
  if value is None:
    return "-"
  return f"{value:.4g}" if isinstance(value, float) else str(value)


def _value_cell(row: TrialRow) -> str:
  if row.value is None:
    return "-"
  return f"{row.value:.4g}" + (f" ± {row.sd:.2g}" if row.sd is not None else "")


def sweep_table(rows: list[TrialRow], keys: list[str], metric) -> str:
  """The trials as a markdown table, in trial order."""
  header = ["trial", "state", *keys, metric.spec.rpartition(":")[0], "steps",
            "wall time", "workdir"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for row in rows:
    wall = ("-" if row.wall_s is None else f"{row.wall_s:.0f} s" if row.wall_s < 90
            else f"{row.wall_s / 60:.1f} min")
    cells = [str(row.number), row.state, *(_cell(row.params.get(k)) for k in keys),
             _value_cell(row), _cell(row.steps), wall, os.path.basename(row.workdir)]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def ranked(rows: list[TrialRow], mode: str) -> list[TrialRow]:
  """The complete trials, best first."""
  complete = [row for row in rows if row.state == "COMPLETE" and row.value is not None]
  return sorted(complete, key=lambda row: row.value, reverse=mode == "max")


def _wide(values: list[Any], ratio: float = 100) -> bool:
  """Positive numbers whose largest is `ratio` times the smallest or more
  (drawn on a log axis)."""
  numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
  return bool(len(numbers) == len(values) and numbers and min(numbers) > 0
              and max(numbers) / min(numbers) >= ratio)


def _log_x(spec: dict[str, Any]) -> bool:
  """Log x for log-uniform keys and for numeric choices spanning a factor of 8."""
  if spec.get("kind") == "choice":
    return _wide(spec.get("values", []), ratio=8)
  return spec.get("kind") == "log_uniform" or bool(spec.get("log"))


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def plot_metric_vs_key(path: str, rows: list[TrialRow], key: str,
                       spec: dict[str, Any], metric) -> None:
  """METRIC against one swept key: complete trials filled, pruned hollow."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(5, 3.5))
  values = [row.params[key] for row in rows if key in row.params]
  categorical = not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                        for v in values)
  order = sorted({str(v) for v in values}) if categorical else []
  for state, style in (("COMPLETE", {}), ("PRUNED", {"facecolors": "none"})):
    shown = [row for row in rows if row.state == state and row.value is not None
             and key in row.params]
    xs = [order.index(str(r.params[key])) if categorical else r.params[key]
          for r in shown]
    ax.scatter(xs, [r.value for r in shown], edgecolors="C0", label=state.lower(),
               **style)
  if categorical:
    ax.set_xticks(range(len(order)), order)
  elif _log_x(spec):
    ax.set_xscale("log")
    if spec.get("kind") == "choice":  # tick the values themselves
      ax.minorticks_off()
      ax.set_xticks(spec["values"], [str(v) for v in spec["values"]])
  ys = [row.value for row in rows if row.value is not None]
  if _wide(ys):
    ax.set_yscale("log")
  ax.set_xlabel(key)
  ax.set_ylabel(metric.spec.rpartition(":")[0])
  ax.legend(fontsize="small")
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def read_steps_curve(workdir: str, split: str, name: str) -> tuple[list, list]:
  """(steps, values) of SPLIT/NAME in WORKDIR/metrics.jsonl."""
  records = cli.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  points = [(r["step"], r[name]) for r in records
            if r.get("split") == split and name in r and "step" in r]
  return [p[0] for p in points], [p[1] for p in points]


def plot_curves(path: str, rows: list[TrialRow], metric) -> None:
  """METRIC against the step for the given trials (the best ones)."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6, 4))
  all_ys = []
  for row in rows:
    steps, ys = read_steps_curve(row.workdir, metric.split, metric.name)
    all_ys += ys
    label = f"trial {row.number}: " + ", ".join(f"{k}={_cell(v)}"
                                                for k, v in row.params.items())
    ax.plot(steps, ys, marker=".", label=label)
  if _wide(all_ys):
    ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel(metric.spec.rpartition(":")[0])
  ax.legend(fontsize="x-small")
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def sweep_report(sweep_dir: str, storage_url: str | None = None) -> str:
  """The sweep's table and best trial as markdown; writes its PNGs."""
  from experiments import sweep  # pylint: disable=g-import-not-at-top
  sweep_dir = os.path.abspath(sweep_dir)
  record = _read_sweep_record(sweep_dir)
  metric = sweep.parse_metric(os.path.join(sweep_dir, "sweep.json"), record["metric"])
  study = _load_study(sweep_dir, record, storage_url)
  trials = study.get_trials(deepcopy=False)
  retried_as = {t.user_attrs["retry_of"]: t.number for t in trials
                if "retry_of" in t.user_attrs}
  rows = [_trial_row(t, metric, retried_as) for t in trials]
  keys = list(record["space"])
  out_dir = os.path.join(sweep_dir, "report")
  os.makedirs(out_dir, exist_ok=True)
  for key in keys:
    plot_metric_vs_key(os.path.join(out_dir, f"metric_vs_{key}.png"), rows, key,
                       record["space"][key], metric)
  best = ranked(rows, metric.mode)
  plot_curves(os.path.join(out_dir, "curves.png"), best[:TOP_CURVES], metric)
  text = sweep_table(rows, keys, metric)
  if best:
    top = best[0]
    text += (f"\n\nBest: trial {top.number} ({top.workdir}): "
             f"{metric.spec.rpartition(':')[0]} = {_value_cell(top)}; "
             + ", ".join(f"{k}={_cell(v)}" for k, v in top.params.items()))
  else:
    text += "\n\nNo trial has completed yet."
  return text + f"\n\nPlots: {out_dir}/"


def parse_args(argv: list[str]) -> ReportArgs:
  """UsageError for an unknown flag, no workdir, or workdirs with --sweep."""
  debug, workdirs, options = False, [], {}
  for arg in argv[1:]:
    option = re.fullmatch(r"--(sweep|storage)=(.*)", arg)
    if cli.debug_requested(["", arg]):
      debug = True
    elif option:
      options[option.group(1)] = cli.check_workdir_flag(option.group(2),
                                                        f"--{option.group(1)}")
    elif arg.startswith("-"):
      raise cli.UsageError(f"unknown flag {arg}; usage: python -m "
                           f"experiments.report [--debug] WORKDIR [WORKDIR ...] "
                           f"or --sweep=DIR [--storage=URL]")
    else:
      workdirs.append(cli.check_workdir_flag(arg, "WORKDIR"))
  if "sweep" in options and workdirs:
    raise cli.UsageError("give either --sweep=DIR or WORKDIRs, not both")
  if "storage" in options and "sweep" not in options:
    raise cli.UsageError("--storage: only with --sweep=DIR")
  if not workdirs and "sweep" not in options:
    raise cli.UsageError("give at least one WORKDIR")
  return ReportArgs(workdirs=tuple(workdirs), debug=debug,
                    sweep=options.get("sweep"), storage=options.get("storage"))


def main(argv: list[str]) -> int:
  """Prints the table; returns the exit code (rows are read before printing)."""
  if {"-h", "--help", "-help"}.intersection(argv[1:]):
    print(__doc__.strip())
    return cli.EXIT_OK
  try:
    args = parse_args(argv)
    if args.sweep is not None:
      print(sweep_report(args.sweep, args.storage))
      return cli.EXIT_OK
    rows = [row(workdir) for workdir in args.workdirs]
  except (Exception, KeyboardInterrupt) as error:  # pylint: disable=broad-except
    return cli.report(error, cli.debug_requested(argv))
  print(HEADER)
  for line in rows:
    print(line)
  return cli.EXIT_OK


if __name__ == "__main__":
  sys.exit(main(sys.argv))
