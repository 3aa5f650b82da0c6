"""Hyperparameter sweeps on Optuna: many runs of one config, one study.

  python -m experiments.sweep --sweep=experiments/sweeps/NAME.py --workdir=DIR
      [--storage=URL] [--num_workers=N] [--debug]

A sweep file is a Python module naming a launcher config (CONFIG), fixed
values (OVERRIDES), a search space (SPACE) of specs built with choice,
uniform, log_uniform and int_range from this module, a sampler, the metric
to optimise and a trial budget; docs/sweeps.md describes every name. The
whole file is checked before any training starts (config keys and every
value against experiments/configs/rules.py, the metric against the names
the task reports); a bad file is one `error: ...` line and exit code 2.

Each trial is an ordinary run workdir, DIR/trial_NNN, trained by
train.train_and_evaluate, so experiments.evaluate and resuming work on it.
The study lives in DIR/study.journal (an Optuna journal file, locked across
processes) or in the RDB that --storage names (sqlite:///path.db,
postgresql://user:pw@host/db), where workers on many machines share it.
DIR/sweep.json fixes the study's name and the sweep file's text: rerunning
in DIR with another text is an error. N workers (NUM_WORKERS, --num_workers)
are processes started with "spawn" (JAX is not fork-safe).

Rerunning the same command after a kill keeps every finished trial and
retries each interrupted one in its own workdir, where training resumes from
its last checkpoint; the sweep still ends with exactly NUM_TRIALS trials.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import difflib
import fcntl
import hashlib
import importlib.util
import math
import multiprocessing
import os
import re
import sys
import time
import warnings
from typing import Any, Iterator

import jax
import numpy as np
import optuna
from absl import flags, logging
from optuna.storages import journal as optuna_journal
from optuna.trial import TrialState

import tasks as tasks_lib
import train
import workdir as workdir_lib
from experiments import cli
from experiments import launch
from experiments.configs import rules

SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("none", "median")
# Module-level names a sweep file may set; any other UPPER_CASE name is an
# error (a misspelt one would silently keep its default otherwise).
NAMES = ("CONFIG", "OVERRIDES", "SPACE", "SAMPLER", "METRIC", "NUM_TRIALS",
         "NUM_WORKERS", "PRUNER", "SEED")
REQUIRED = ("CONFIG", "SPACE", "METRIC")
SWEEP_FILE = "sweep.json"
JOURNAL_FILE = "study.journal"
LOCKS_DIR = "locks"
LOGS_DIR = "logs"
# A RUNNING trial that never recorded its workdir is judged dead only after
# this long (its worker may be between creating it and recording it).
UNSTARTED_GRACE_S = 120
# Trials that end in these states count towards NUM_TRIALS (FAIL: a diverged
# run); a trial interrupted by a kill or Ctrl-C does not: its retry does.
COUNTED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL,
                  TrialState.RUNNING, TrialState.WAITING)
# The system attrs by which optuna's GridSampler knows a trial's grid point.
GRID_ATTRS = ("grid_id", "search_space")
# Errors that end one trial as FAIL and let the sweep go on.
TRIAL_FAILURES = (train.NonFiniteLossError,)


# ----------------------------------------------------------------------------
# The specs of a search space.

@dataclasses.dataclass(frozen=True)
class Choice:
  """One of `values` (None, bool, int, float or str each)."""
  values: tuple[Any, ...]

  def suggest(self, trial: optuna.Trial, key: str) -> Any:
    return trial.suggest_categorical(key, self.values)

  def points(self) -> tuple[Any, ...]:
    """The values to check against the key's rule: all of them."""
    return self.values

  def problem(self) -> str | None:
    if not self.values:
      return "choice([]) is empty; give at least one value"
    for value in self.values:
      if value is not None and not isinstance(value, (bool, int, float, str)):
        return (f"choice values must be None, bool, int, float or str, got "
                f"{value!r}")
    if len(set(self.values)) != len(self.values):
      return f"choice {list(self.values)} repeats a value"
    return None

  def describe(self) -> dict[str, Any]:
    return {"kind": "choice", "values": list(self.values)}


@dataclasses.dataclass(frozen=True)
class Uniform:
  """A float in [low, high], uniformly or (log=True) log-uniformly drawn."""
  low: float
  high: float
  log: bool = False

  def suggest(self, trial: optuna.Trial, key: str) -> float:
    return trial.suggest_float(key, self.low, self.high, log=self.log)

  def points(self) -> tuple[Any, ...]:
    """Both bounds (the key's rule then holds in between)."""
    return (self.low, self.high)

  def problem(self) -> str | None:
    name = "log_uniform" if self.log else "uniform"
    if not all(_is_number(v) and math.isfinite(v) for v in (self.low, self.high)):
      return f"{name}({self.low!r}, {self.high!r}): bounds must be finite numbers"
    if self.low >= self.high:
      return f"{name}({self.low!r}, {self.high!r}): needs low < high"
    if self.log and self.low <= 0:
      return f"{name}({self.low!r}, {self.high!r}): needs 0 < low"
    return None

  def describe(self) -> dict[str, Any]:
    return {"kind": "log_uniform" if self.log else "uniform", "low": self.low,
            "high": self.high}


@dataclasses.dataclass(frozen=True)
class IntRange:
  """An integer in [low, high] (both included), log=True: log-uniformly."""
  low: int
  high: int
  log: bool = False

  def suggest(self, trial: optuna.Trial, key: str) -> int:
    return trial.suggest_int(key, self.low, self.high, log=self.log)

  def points(self) -> tuple[Any, ...]:
    return (self.low, self.high)

  def problem(self) -> str | None:
    text = f"int_range({self.low!r}, {self.high!r})"
    if not all(isinstance(v, int) and not isinstance(v, bool)
               for v in (self.low, self.high)):
      return f"{text}: bounds must be integers"
    if self.low >= self.high:
      return f"{text}: needs low < high"
    if self.log and self.low <= 0:
      return f"{text}: log=True needs 0 < low"
    return None

  def describe(self) -> dict[str, Any]:
    return {"kind": "int_range", "low": self.low, "high": self.high, "log": self.log}


Spec = Choice | Uniform | IntRange


def choice(values) -> Choice:
  """SPACE spec: one of `values`, e.g. choice([16, 32, 64])."""
  return Choice(tuple(values))


def uniform(low: float, high: float) -> Uniform:
  """SPACE spec: a float drawn uniformly from [low, high]."""
  return Uniform(_as_float(low), _as_float(high))


def log_uniform(low: float, high: float) -> Uniform:
  """SPACE spec: a float drawn log-uniformly from [low, high], 0 < low."""
  return Uniform(_as_float(low), _as_float(high), log=True)


def int_range(low: int, high: int, log: bool = False) -> IntRange:
  """SPACE spec: an integer in [low, high], both included."""
  return IntRange(low, high, log)


def _is_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_float(value: Any) -> Any:
  """An int bound as a float (a float key's rule sees what suggest_float
  returns); anything else unchanged, for the checks to name."""
  return float(value) if _is_number(value) else value


# ----------------------------------------------------------------------------
# The sweep file.

@dataclasses.dataclass(frozen=True)
class Metric:
  """The value a sweep optimises: SPLIT/NAME, minimised or maximised."""
  split: str
  name: str
  mode: str  # 'min' | 'max'

  @property
  def spec(self) -> str:
    return f"{self.split}/{self.name}:{self.mode}"

  @property
  def direction(self) -> str:
    return "minimize" if self.mode == "min" else "maximize"


@dataclasses.dataclass(frozen=True)
class Sweep:
  """A checked sweep file: every name resolved, defaults filled in.

  config is the launcher config with OVERRIDES applied (locked); a trial
  sets its SPACE values on a copy of it.
  """
  path: str
  source: str
  config_spec: str
  config: Any
  overrides: dict[str, Any]
  space: dict[str, Spec]
  sampler: str
  metric: Metric
  num_trials: int
  num_workers: int
  pruner: str
  seed: int

  @property
  def study_name(self) -> str:
    """The sweep file's name and a hash of its text (the same on every machine)."""
    stem = os.path.splitext(os.path.basename(self.path))[0]
    return f"{stem}-{hashlib.sha256(self.source.encode()).hexdigest()[:10]}"


def _sweep_error(path: str, text: str) -> cli.UsageError:
  return cli.UsageError(f"{path}: {text}")


def _execute(path: str) -> tuple[str, dict[str, Any]]:
  """-> (the file's text, its module-level names); UsageError if it fails."""
  if not os.path.isfile(path):
    raise cli.UsageError(f"--sweep: no such sweep file: {path}")
  with open(path, encoding="utf-8") as f:
    source = f.read()
  spec = importlib.util.spec_from_file_location("_sweep_file", path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:  # pylint: disable=broad-except
    where = f" (line {e.lineno})" if isinstance(e, SyntaxError) else ""
    raise _sweep_error(path, f"cannot be loaded{where}: {type(e).__name__}: "
                       f"{cli.message(e)}") from e
  return source, {k: v for k, v in vars(module).items() if not k.startswith("_")}


def _check_names(path: str, names: dict[str, Any]) -> None:
  """UsageError for an unknown UPPER_CASE name or a missing required one."""
  for name in names:
    if re.fullmatch(r"[A-Z][A-Z0-9_]*", name) and name not in NAMES:
      nearest = difflib.get_close_matches(name, NAMES, n=1)
      hint = f"Did you mean {nearest[0]}?" if nearest else f"The names are {', '.join(NAMES)}."
      raise _sweep_error(path, f"unknown name {name}. {hint}")
  for name in REQUIRED:
    if name not in names:
      raise _sweep_error(path, f"{name} is required (see docs/sweeps.md)")


def _typed(path: str, names: dict[str, Any], name: str, kind: type,
           default: Any = None, minimum: int | None = None) -> Any:
  """names[name] (or default), checked to be a `kind` (an int >= minimum)."""
  value = names.get(name, default)
  wrong_type = not isinstance(value, kind) or (kind is int and isinstance(value, bool))
  if wrong_type or (minimum is not None and value < minimum):
    what = f"an integer >= {minimum}" if kind is int else f"a {kind.__name__}"
    raise _sweep_error(path, f"{name}: expected {what}, got {value!r}")
  return value


def load_config(path: str, spec: str):
  """The launcher config CONFIG names, locked and checked as launch.py does.

  spec is FILE[:ARG] like a launcher's --config: a bare FILE (adding.py:50)
  is looked up in experiments/configs/, a path (with a '/') in the current
  folder or the repository root.
  """
  file_part = spec.partition(":")[0]
  full = spec if "/" in file_part else launch.config_path(spec)
  try:
    args = launch.parse_args(["sweep", "--workdir=."], full)
  except ValueError as e:
    raise _sweep_error(path, f"CONFIG {spec!r}: "
                       f"{re.sub(r'^--config: ', '', cli.message(e))}") from e
  return args.config


def _check_key(path: str, where: str, config, key: Any) -> None:
  if not isinstance(key, str) or key not in config:
    raise _sweep_error(path, launch.unknown_key_message(where, str(key), config.keys()))


def _check_value(path: str, where: str, config, key: str, value: Any) -> None:
  """UsageError unless `value` keeps `key`'s rule in rules.py."""
  rule = rules.rules_for(config.get("task", "")).get(key)
  if rule is None:
    raise _sweep_error(path, f"{where}: {key} has no rule in "
                       f"experiments/configs/rules.py")
  refusal = rule.refusal(key, value)
  if refusal is not None:
    raise _sweep_error(path, f"{where}: {refusal}")


def _apply(config, values: dict[str, Any]):
  """A copy of the locked config with `values` set."""
  config = copy.deepcopy(config)
  for key, value in values.items():
    config[key] = value
  return config


def _check_space(path: str, config, space: Any,
                 overrides: dict[str, Any]) -> dict[str, Spec]:
  """UsageError for an empty SPACE, a bad spec, an unknown key, or a value
  (every choice, both bounds) its key's rule refuses."""
  if not isinstance(space, dict) or not space:
    raise _sweep_error(path, f"SPACE: expected a non-empty dict of key -> spec "
                       f"(sweep.choice, uniform, log_uniform, int_range), got {space!r}")
  for key, spec in space.items():
    _check_key(path, "SPACE", config, key)
    if key in overrides:
      raise _sweep_error(path, f"{key} is in both SPACE and OVERRIDES")
    if not isinstance(spec, (Choice, Uniform, IntRange)):
      raise _sweep_error(path, f"SPACE[{key!r}]: expected sweep.choice, uniform, "
                         f"log_uniform or int_range, got {spec!r}")
    problem = spec.problem()
    if problem:
      raise _sweep_error(path, f"SPACE[{key!r}]: {problem}")
    for value in spec.points():
      _check_value(path, f"SPACE[{key!r}]", config, key, value)
  return dict(space)


def parse_metric(path: str, spec: Any) -> Metric:
  """'valid/mse:min' -> Metric; UsageError otherwise."""
  try:
    if not isinstance(spec, str) or not spec:
      raise ValueError(f"expected 'SPLIT/METRIC:min' or 'SPLIT/METRIC:max', got {spec!r}")
    rules.check_best_metric(spec)
  except ValueError as e:
    raise _sweep_error(path, f"METRIC: {e}") from e
  split, name, mode = train.parse_best_metric(spec)
  return Metric(split, name, mode)


def reported_metrics(config, split: str) -> list[str] | None:
  """The metric names the task reports on `split`; None if it has no such split.

  Builds the task and summarizes the loss sums of its initial params on the
  split's first batch, traced abstractly (jax.eval_shape, nothing computed);
  a summarize that needs real numbers gets that one batch evaluated.
  """
  task = tasks_lib.build(config)
  if split not in task.eval_splits:
    return None
  batch = task.eval_splits[split][0]

  def sums(rng):
    params = task.init_params(rng, batch)
    outputs, _ = task.apply(params, batch, None, task.carry_for(batch), train=False)
    return task.loss(outputs, batch)[1]

  rng = jax.random.PRNGKey(0)
  shapes = jax.eval_shape(sums, rng)
  try:
    totals = jax.tree_util.tree_map(lambda s: np.ones(s.shape, s.dtype), shapes)
    return sorted(task.summarize(totals))
  except Exception:  # pylint: disable=broad-except
    return sorted(task.summarize(jax.device_get(sums(rng))))


def _check_metric(path: str, config, metric: Metric) -> None:
  names = reported_metrics(config, metric.split)
  if names is None:
    splits = sorted(tasks_lib.build(config).eval_splits)
    raise _sweep_error(path, f"METRIC {metric.spec!r}: the task has no split "
                       f"{metric.split!r}; its splits are {splits}")
  if metric.name not in names:
    raise _sweep_error(path, f"METRIC {metric.spec!r}: the task does not report "
                       f"{metric.name!r} on {metric.split}; it reports {names}")


def _grid_size(space: dict[str, Spec]) -> int:
  return math.prod(len(spec.values) for spec in space.values())


def _check_budget(path: str, names: dict[str, Any], sampler: str,
                  space: dict[str, Spec]) -> int:
  """NUM_TRIALS: required unless grid, where it defaults to the grid's size."""
  if sampler != "grid":
    if "NUM_TRIALS" not in names:
      raise _sweep_error(path, f"NUM_TRIALS is required with SAMPLER {sampler!r}")
    return _typed(path, names, "NUM_TRIALS", int, minimum=1)
  others = [key for key, spec in space.items() if not isinstance(spec, Choice)]
  if others:
    raise _sweep_error(path, f"SAMPLER 'grid' needs choice specs only; "
                       f"{', '.join(others)} {'is' if len(others) == 1 else 'are'} "
                       f"a range (use sampler 'random' or 'tpe', or a choice)")
  size = _grid_size(space)
  num_trials = _typed(path, names, "NUM_TRIALS", int, default=size, minimum=1)
  if num_trials > size:
    raise _sweep_error(path, f"NUM_TRIALS ({num_trials}) exceeds the grid's "
                       f"{size} points")
  return num_trials


def _choose(path: str, names: dict[str, Any], name: str, options: tuple[str, ...],
            default: str) -> str:
  value = names.get(name, default)
  if value not in options:
    raise _sweep_error(path, f"{name}: unknown {name.lower()} {value!r}; known are "
                       f"{list(options)}")
  return value


def first_point(space: dict[str, Spec]) -> dict[str, Any]:
  """One value per key (a choice's first, a range's low bound)."""
  return {key: spec.points()[0] for key, spec in space.items()}


def load_sweep(path: str) -> Sweep:
  """The checked sweep file; UsageError (one line, naming the file) otherwise.

  Builds the task once to check METRIC; writes nothing.
  """
  source, names = _execute(path)
  _check_names(path, names)
  config = load_config(path, _typed(path, names, "CONFIG", str))
  overrides = _typed(path, names, "OVERRIDES", dict, default={})
  for key, value in overrides.items():
    _check_key(path, "OVERRIDES", config, key)
    _check_value(path, "OVERRIDES", config, key, value)
  space = _check_space(path, config, names["SPACE"], overrides)
  sampler = _choose(path, names, "SAMPLER", SAMPLERS, "tpe")
  metric = parse_metric(path, names["METRIC"])
  num_trials = _check_budget(path, names, sampler, space)
  config = _apply(config, overrides)
  try:
    train.validate_config(_apply(config, first_point(space)))
  except ValueError as e:
    raise _sweep_error(path, cli.message(e)) from e
  _check_metric(path, _apply(config, first_point(space)), metric)
  return Sweep(
      path=os.path.abspath(path), source=source, config_spec=names["CONFIG"],
      config=config, overrides=dict(overrides), space=space, sampler=sampler,
      metric=metric, num_trials=num_trials,
      num_workers=_typed(path, names, "NUM_WORKERS", int, default=1, minimum=1),
      pruner=_choose(path, names, "PRUNER", PRUNERS, "median"),
      seed=_typed(path, names, "SEED", int, default=0, minimum=0))


# ----------------------------------------------------------------------------
# The study: DIR/sweep.json, storage, samplers, pruners.

def mask_password(url: str) -> str:
  """postgresql://user:pw@host/db -> postgresql://user:***@host/db."""
  return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def record(sweep: Sweep, storage_url: str | None) -> dict[str, Any]:
  """What DIR/sweep.json holds: the study's name, the file, its space."""
  return {
      "study_name": sweep.study_name, "sweep_file": sweep.path,
      "source": sweep.source,
      "storage": JOURNAL_FILE if storage_url is None else mask_password(storage_url),
      "metric": sweep.metric.spec, "num_trials": sweep.num_trials,
      "space": {key: spec.describe() for key, spec in sweep.space.items()}}


def check_record(sweep_dir: str, sweep: Sweep, storage_url: str | None) -> bool:
  """Whether DIR/sweep.json exists; UsageError if it is another sweep's or
  names another storage."""
  path = os.path.join(sweep_dir, SWEEP_FILE)
  if not os.path.exists(path):
    return False
  saved = cli.read_json(path)
  if not isinstance(saved, dict):
    raise cli.CorruptFileError(f"{path}: expected a JSON object")
  if saved.get("source") != sweep.source:
    raise cli.UsageError(f"--workdir: {sweep_dir} holds the sweep of a different "
                         f"sweep file ({saved.get('sweep_file')}, study "
                         f"{saved.get('study_name')}): another file or a changed "
                         f"text; use a new --workdir, or the file as it was to "
                         f"resume that sweep")
  wanted = record(sweep, storage_url)["storage"]
  if saved.get("storage") != wanted:
    raise cli.UsageError(f"--storage: {sweep_dir} keeps its study in "
                         f"{saved.get('storage')}, not {wanted}; give the same "
                         f"--storage to resume it")
  return True


def open_storage(sweep_dir: str, storage_url: str | None) -> optuna.storages.BaseStorage:
  """The journal file DIR/study.journal (default) or the RDB at storage_url."""
  if storage_url is None:
    path = os.path.join(os.path.abspath(sweep_dir), JOURNAL_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return optuna_journal.JournalStorage(optuna_journal.JournalFileBackend(
        path, lock_obj=optuna_journal.JournalFileOpenLock(path)))
  try:
    return optuna.storages.RDBStorage(storage_url)
  except Exception as e:  # pylint: disable=broad-except
    raise cli.UsageError(f"--storage: cannot open {mask_password(storage_url)}: "
                         f"{type(e).__name__}: {cli.message(e)}") from e


def worker_seed(sweep: Sweep, worker: int, existing_trials: int) -> int:
  """A sampler seed from SEED, the worker's index and the trials the study
  held when it started, so workers and reruns draw different points."""
  sequence = np.random.SeedSequence([sweep.seed, worker, existing_trials])
  return int(sequence.generate_state(1)[0])


def make_sampler(sweep: Sweep, seed: int) -> optuna.samplers.BaseSampler:
  """GRID, RANDOM or TPE; random and TPE draw from `seed`."""
  if sweep.sampler == "grid":  # shuffles the grid by its seed: the same everywhere
    grid = {key: list(spec.values) for key, spec in sweep.space.items()}
    return optuna.samplers.GridSampler(grid, seed=sweep.seed)
  if sweep.sampler == "random":
    return optuna.samplers.RandomSampler(seed=seed)
  startup = min(10, max(3, sweep.num_trials // 3))
  return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def budget_steps(config) -> int:
  """The run's step budget (from max_train_examples when num_train_steps is 0)."""
  if config.num_train_steps > 0:
    return config.num_train_steps
  return max(1, config.get("max_train_examples", 0) // config.batch_size)


def make_pruner(sweep: Sweep) -> optuna.pruners.BasePruner:
  """'median': prune a trial whose best value so far is worse than the median
  of the finished trials' at the same step, once 5 trials have finished and
  past half of the step budget (earlier, slow starters are often the best)."""
  if sweep.pruner == "none":
    return optuna.pruners.NopPruner()
  return optuna.pruners.MedianPruner(
      n_startup_trials=5, n_warmup_steps=budget_steps(sweep.config) // 2)


def open_study(sweep: Sweep, storage) -> optuna.Study:
  """The sweep's study in `storage`, created on first use."""
  return optuna.create_study(
      study_name=sweep.study_name, storage=storage, load_if_exists=True,
      direction=sweep.metric.direction, pruner=make_pruner(sweep))


# ----------------------------------------------------------------------------
# Locks: one for admitting trials, one per running trial.

@contextlib.contextmanager
def file_lock(path: str, blocking: bool = True) -> Iterator[bool]:
  """Holds an flock on `path` (created); yields False when blocking=False
  and another process holds it. The kernel drops it when its process dies."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
      yield False
      return
    yield True
  finally:
    os.close(fd)


def trial_lock_path(sweep_dir: str, number: int) -> str:
  return os.path.join(sweep_dir, LOCKS_DIR, f"trial_{number:03d}.lock")


def trial_workdir(sweep_dir: str, number: int) -> str:
  return os.path.join(sweep_dir, f"trial_{number:03d}")


def _is_live(sweep_dir: str, trial: optuna.trial.FrozenTrial) -> bool:
  """Whether a RUNNING trial of this DIR may still have a live process.

  A trial records its workdir while holding its lock (and the admission
  lock, which the caller holds now), so a recorded trial whose lock is free
  has lost its process. One without a record is given UNSTARTED_GRACE_S.
  """
  workdir = trial.user_attrs.get("workdir")
  if workdir is None:
    started = trial.datetime_start or datetime.datetime.now()
    return (datetime.datetime.now() - started).total_seconds() < UNSTARTED_GRACE_S
  if os.path.dirname(workdir) != sweep_dir:
    return True  # another DIR's trial (another machine): its own rerun judges it
  with file_lock(trial_lock_path(sweep_dir, trial.number), blocking=False) as free:
    return not free


def recover_interrupted(study: optuna.Study, sweep_dir: str) -> list[int]:
  """Fails the RUNNING trials whose process died and queues a retry of every
  interrupted trial not yet retried, with its params and workdir.

  Call while holding the admission lock. Returns the retried trial numbers.
  """
  storage = study._storage  # pylint: disable=protected-access
  trials = study.get_trials(deepcopy=False)
  for trial in trials:
    if trial.state == TrialState.RUNNING and not _is_live(sweep_dir, trial):
      with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
  trials = study.get_trials(deepcopy=False)
  retried = {t.user_attrs.get("retry_of") for t in trials}
  queued = []
  for trial in trials:
    if (trial.state == TrialState.FAIL and trial.user_attrs.get("interrupted")
        and trial.number not in retried):
      workdir = trial.user_attrs.get("workdir") or trial_workdir(sweep_dir, trial.number)
      grid = {k: trial.system_attrs[k] for k in GRID_ATTRS if k in trial.system_attrs}
      study.enqueue_trial(trial.params, user_attrs={
          "workdir": workdir, "retry_of": trial.number, "grid_attrs": grid})
      queued.append(trial.number)
  return queued


def counted(trials) -> int:
  """Trials that count towards NUM_TRIALS: all but the interrupted ones."""
  return sum(1 for t in trials if t.state in COUNTED_STATES
             and not (t.state == TrialState.FAIL and t.user_attrs.get("interrupted")))


def finished(trials) -> int:
  """Trials that ran to an end and count (complete, pruned, failed)."""
  return sum(1 for t in trials if t.state.is_finished()
             and not (t.state == TrialState.FAIL and t.user_attrs.get("interrupted")))


def wants_another(study: optuna.Study, num_trials: int) -> bool:
  """Whether to ask for a trial: a retry is waiting, or the budget has room."""
  trials = study.get_trials(deepcopy=False)
  waiting = any(t.state == TrialState.WAITING for t in trials)
  return waiting or counted(trials) < num_trials


# ----------------------------------------------------------------------------
# One trial.

def objective_value(summary: dict[str, Any], config, metric: Metric) -> float:
  """summary['best']['value'] when the config's best_metric is METRIC, else
  the final summary['metrics'][split][name] (a replicated run's mean)."""
  best = config.get("best_metric", "")
  if best and train.parse_best_metric(best) == (metric.split, metric.name, metric.mode):
    return float(summary["best"]["value"])
  return float(summary["metrics"][metric.split][metric.name])


def make_on_evaluation(trial, metric: Metric) -> train.EvaluationCallback:
  """on_evaluation for train_and_evaluate: reports METRIC to the trial at each
  evaluation and raises optuna.TrialPruned when the pruner says so."""

  def on_evaluation(step: int, results: dict[str, dict[str, float]]) -> None:
    trial.report(float(results[metric.split][metric.name]), step)
    if trial.should_prune():
      raise optuna.TrialPruned(f"pruned at step {step}: {metric.split}/{metric.name}"
                               f" = {results[metric.split][metric.name]:.5g}")

  return on_evaluation


def trial_config(sweep: Sweep, params: dict[str, Any]):
  """The sweep's config with the trial's params, progress bar off."""
  return _apply(sweep.config, {**params, "progress_bar": False})


@dataclasses.dataclass
class Admission:
  """The admission lock a worker holds while it creates and records a trial."""
  lock: contextlib.ExitStack

  def release(self) -> None:
    self.lock.close()


def say(text: str) -> None:
  """A progress line on stdout, with the time of day."""
  print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _describe(params: dict[str, Any]) -> str:
  return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                  for k, v in params.items())


@contextlib.contextmanager
def _trial_output(sweep_dir: str, number: int) -> Iterator[None]:
  """Training's prints and warnings go to DIR/logs/trial_NNN.log."""
  path = os.path.join(sweep_dir, LOGS_DIR, f"trial_{number:03d}.log")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "a") as log, contextlib.redirect_stdout(log), \
      contextlib.redirect_stderr(log):
    yield


def run_trial(trial: optuna.Trial, sweep: Sweep, sweep_dir: str,
              admission: Admission) -> float:
  """The objective: takes the trial's lock, draws its params, records its
  workdir, lets the next trial in, trains, returns METRIC's value."""
  with contextlib.ExitStack() as held:
    held.enter_context(file_lock(trial_lock_path(sweep_dir, trial.number)))
    for key, value in trial.user_attrs.get("grid_attrs", {}).items():
      # A retry takes over its grid point (GridSampler.after_trial reads it).
      trial.storage.set_trial_system_attr(trial._trial_id, key, value)  # pylint: disable=protected-access
    params = {key: spec.suggest(trial, key) for key, spec in sweep.space.items()}
    workdir = trial.user_attrs.get("workdir") or trial_workdir(sweep_dir, trial.number)
    trial.set_user_attr("workdir", workdir)
    admission.release()
    retry = trial.user_attrs.get("retry_of")
    again = f" (retrying trial {retry}, resuming its workdir)" if retry is not None else ""
    say(f"trial {trial.number} started: {_describe(params)} in {workdir}{again}")
    config = trial_config(sweep, params)
    try:
      with _trial_output(sweep_dir, trial.number):
        summary = train.train_and_evaluate(
            config, workdir, on_evaluation=make_on_evaluation(trial, sweep.metric))
    except (KeyboardInterrupt, train.RunInterrupted):
      trial.set_user_attr("interrupted", True)
      raise
    except TRIAL_FAILURES as e:
      trial.set_user_attr("error", cli.message(e))
      say(f"trial {trial.number} FAIL: {cli.message(e)}")
      raise
    except optuna.TrialPruned as e:
      say(f"trial {trial.number} PRUNED: {e}")
      raise
    value = objective_value(summary, config, sweep.metric)
    say(f"trial {trial.number} COMPLETE: {sweep.metric.split}/{sweep.metric.name} "
        f"= {value:.5g} after {summary['step']} steps, "
        f"{summary['wall_time_s'] / 60:.1f} min")
    return value


def run_worker(sweep: Sweep, sweep_dir: str, storage_url: str | None,
               worker: int) -> None:
  """Runs trials until the study holds NUM_TRIALS that count."""
  study = open_study(sweep, open_storage(sweep_dir, storage_url))
  existing = len(study.get_trials(deepcopy=False))
  study.sampler = make_sampler(sweep, worker_seed(sweep, worker, existing))
  admission_path = os.path.join(sweep_dir, LOCKS_DIR, "admission.lock")
  while True:
    with contextlib.ExitStack() as lock:
      lock.enter_context(file_lock(admission_path))
      admission = Admission(lock.pop_all())
    try:
      recover_interrupted(study, sweep_dir)
      if not wants_another(study, sweep.num_trials):
        return
      study.optimize(lambda t: run_trial(t, sweep, sweep_dir, admission),
                     n_trials=1, catch=TRIAL_FAILURES)
    finally:
      admission.release()


# ----------------------------------------------------------------------------
# Workers as processes.

def _quiet() -> None:
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
  if not flags.FLAGS.is_parsed():  # library code may read the shared flags
    flags.FLAGS.mark_as_parsed()


class WorkerError(cli.CorruptFileError):
  """A worker process stopped with an error (a runtime error: exit code 1)."""


def _worker_process(sweep: Sweep, sweep_dir: str, storage_url: str | None,
                    worker: int, errors) -> None:
  """A spawned worker's body; reports a user error on `errors` and exits 1."""
  _quiet()
  try:
    run_worker(sweep, sweep_dir, storage_url, worker)
  except (KeyboardInterrupt, train.RunInterrupted):
    sys.exit(cli.EXIT_INTERRUPTED)
  except Exception as e:  # pylint: disable=broad-except
    code = cli.exit_code(e)
    if code is None:
      raise  # a bug: its traceback goes to the worker's stderr
    errors.put(f"worker {worker}: {cli.message(e)}")
    sys.exit(code)


def run_workers(sweep: Sweep, sweep_dir: str, storage_url: str | None,
                num_workers: int) -> None:
  """Runs the workers (in this process when there is one); RuntimeError
  naming a worker that failed."""
  if num_workers == 1:
    run_worker(sweep, sweep_dir, storage_url, 0)
    return
  context = multiprocessing.get_context("spawn")
  errors = context.SimpleQueue()
  processes = [context.Process(target=_worker_process, name=f"sweep-worker-{i}",
                               args=(sweep, sweep_dir, storage_url, i, errors))
               for i in range(num_workers)]
  for process in processes:
    process.start()
  try:
    for process in processes:
      process.join()
  except KeyboardInterrupt:
    for process in processes:
      process.join()  # each worker saw Ctrl-C too and stops on its own
    raise
  codes = [p.exitcode for p in processes]
  if any(code == cli.EXIT_INTERRUPTED for code in codes):
    raise KeyboardInterrupt
  failed = [(i, code) for i, code in enumerate(codes) if code]
  if failed:
    messages = []
    while not errors.empty():
      messages.append(errors.get())
    detail = "; ".join(messages) or "; ".join(
        f"worker {i} exited with code {code}" for i, code in failed)
    raise WorkerError(f"{detail} (trial logs in {os.path.join(sweep_dir, LOGS_DIR)})")


# ----------------------------------------------------------------------------
# The command line.

@dataclasses.dataclass(frozen=True)
class SweepArgs:
  sweep_file: str
  workdir: str
  storage: str | None
  num_workers: int | None
  debug: bool


def parse_args(argv: list[str]) -> SweepArgs:
  """UsageError for a bad or missing flag."""
  flag_values = flags.FlagValues()
  flags.DEFINE_string("sweep", None, "The sweep file (a Python module).",
                      flag_values=flag_values)
  flags.DEFINE_string("workdir", None, "The sweep's directory; rerun with the "
                      "same one to resume.", flag_values=flag_values)
  flags.DEFINE_string("storage", None, "An RDB URL for the study (sqlite:///x.db, "
                      "postgresql://...); default: DIR/study.journal.",
                      flag_values=flag_values)
  flags.DEFINE_integer("num_workers", None, "Worker processes (default: the sweep "
                       "file's NUM_WORKERS).", lower_bound=1, flag_values=flag_values)
  cli.define_debug_flag(flag_values)
  try:
    rest = flag_values(argv)
  except flags.Error as e:
    raise cli.UsageError(cli.flag_error_message(e)) from e
  if len(rest) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(rest[1:])}")
  sweep_file = cli.check_workdir_flag(flag_values.sweep, "--sweep")
  workdir = cli.check_workdir_flag(flag_values.workdir)
  return SweepArgs(sweep_file=sweep_file, workdir=os.path.abspath(workdir),
                   storage=flag_values.storage, num_workers=flag_values.num_workers,
                   debug=flag_values.debug)


def summarize(study: optuna.Study, metric: Metric) -> str:
  """'N trials (C complete, P pruned, F failed); best: trial K, METRIC = V, params'."""
  trials = [t for t in study.get_trials(deepcopy=False)
            if not (t.state == TrialState.FAIL and t.user_attrs.get("interrupted"))]
  states = {s: sum(t.state == s for t in trials) for s in
            (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
  line = (f"{len(trials)} trials ({states[TrialState.COMPLETE]} complete, "
          f"{states[TrialState.PRUNED]} pruned, {states[TrialState.FAIL]} failed)")
  complete = [t for t in trials if t.state == TrialState.COMPLETE]
  if complete:
    pick = min if metric.mode == "min" else max
    best = pick(complete, key=lambda t: t.value)
    line += (f"; best: trial {best.number}, {metric.split}/{metric.name} = "
             f"{best.value:.5g}, {_describe(best.params)}, {best.user_attrs['workdir']}")
  return line


def _open_storage_in(sweep_dir: str, storage_url: str | None):
  """open_storage, with DIR made first (an sqlite file may live in it) and
  removed again if the storage does not open."""
  created = not os.path.exists(sweep_dir)
  os.makedirs(sweep_dir, exist_ok=True)
  try:
    return open_storage(sweep_dir, storage_url)
  except Exception:
    if created:
      with contextlib.suppress(OSError):
        os.rmdir(sweep_dir)
    raise


def sweep_main(args: SweepArgs) -> None:
  """Checks the sweep file, opens or resumes the study, runs the workers."""
  _quiet()
  launch.check_workdir_path(args.workdir)
  sweep = load_sweep(args.sweep_file)
  num_workers = args.num_workers or sweep.num_workers
  known = check_record(args.workdir, sweep, args.storage)
  storage = _open_storage_in(args.workdir, args.storage)
  if not known:
    workdir_lib.write_json(os.path.join(args.workdir, SWEEP_FILE),
                           record(sweep, args.storage))
  study = open_study(sweep, storage)
  with file_lock(os.path.join(args.workdir, LOCKS_DIR, "admission.lock")):
    retried = recover_interrupted(study, args.workdir)
  done = finished(study.get_trials(deepcopy=False))
  say(f"sweep {sweep.study_name}: {done} of {sweep.num_trials} trials in "
      f"{args.workdir}" + (f"; retrying interrupted trials {retried}" if retried
                           else "") + f"; {num_workers} worker(s)")
  start = time.time()
  run_workers(sweep, args.workdir, args.storage, num_workers)
  say(f"sweep done in {(time.time() - start) / 60:.1f} min: "
      f"{summarize(study, sweep.metric)}")


def main(argv: list[str]) -> int:
  """The command; returns the exit code (experiments/cli.py's)."""
  if {"-h", "--help", "-help", "--helpshort"}.intersection(argv[1:]):
    print(__doc__.strip())
    return cli.EXIT_OK
  try:
    sweep_main(parse_args(argv))
  except (Exception, KeyboardInterrupt) as error:  # pylint: disable=broad-except
    return cli.report(error, cli.debug_requested(argv))
  return cli.EXIT_OK


if __name__ == "__main__":
  # Run through the importable module, so that sweep files' `from experiments
  # import sweep` specs are the same classes this code checks.
  from experiments import sweep as sweep_module  # pylint: disable=import-self
  logging.use_absl_handler()
  sys.exit(sweep_module.main(sys.argv))
