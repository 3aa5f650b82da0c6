"""Shared body of the absl launchers: flags -> train.train_and_evaluate.

Usage: python -m experiments.<task> --workdir=DIR [--config=FILE[:ARG]]
         [--config.<key>=<value> ...] [--allow_config_change=KEY,KEY] [--debug]
         [--multihost [--coordinator_address=HOST:PORT --num_processes=N
          --process_id=I]]

Runs from any folder (with the repository on PYTHONPATH): each launcher's
default config is found next to this file, and a relative --config FILE that
is not in the current folder is read from the repository root, so the
commands in the configs' docstrings work anywhere. Configs are locked, so a
mistyped key is an error that names the nearest key, not a new key; every
value is checked against experiments/configs/rules.py before anything is
written. --allow_config_change lets the named keys differ from the run's
config.json when resuming. Training uses every visible device
(--config.num_devices to use fewer); --multihost (or JAX_COORDINATOR_ADDRESS
in the environment) starts JAX's multi-process runtime first, one process per
host (docs/multi_device.md). User errors are one `error: ...` line (--debug: the
traceback); exit codes are experiments/cli.py's (2: bad flag or config value,
1: runtime or file-system error).
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import inspect
import json
import os
import re
import sys
from typing import Any, Callable

import ml_collections
from absl import flags, logging
from ml_collections import config_flags

import devices
import train
from experiments import cli
from experiments.configs import rules

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS_DIR = os.path.join(REPO_ROOT, "experiments", "configs")
HELP_FLAGS = frozenset({"-h", "-?", "--help", "-help", "--helpshort",
                        "-helpshort", "--helpfull", "-helpfull"})
_ABSL_HELP_FLAG_NAMES = frozenset({"help", "?", "helpshort", "helpfull", "helpxml",
                                   "only_check_args"})
_CONFIG_OVERRIDE = re.compile(r"--?(?:no)?config\.([^=]+)")

# Kept for the tools that import it from here (translate, sample).
user_errors_exit = cli.user_errors_exit


@dataclasses.dataclass(frozen=True)
class LaunchArgs:
  """A launcher's parsed and checked command line."""
  config: ml_collections.ConfigDict
  workdir: str
  allow_config_change: tuple[str, ...]
  debug: bool
  flag_values: flags.FlagValues


def config_path(name: str) -> str:
  """experiments/configs/NAME as an absolute path; NAME is FILE or FILE:ARG."""
  return os.path.join(CONFIGS_DIR, name)


def resolve_config_file(spec: str) -> str:
  """FILE[:ARG] with a relative FILE that is missing from the current folder
  but present under the repository root made absolute; UsageError if it is in
  neither."""
  path, sep, arg = spec.partition(":")
  if not path:
    raise cli.UsageError(f"--config: expected FILE or FILE:ARG, got {spec!r}")
  if not os.path.isabs(path) and not os.path.exists(path):
    from_root = os.path.join(REPO_ROOT, path)
    if os.path.exists(from_root):
      path = from_root
  if not os.path.isfile(path):
    raise cli.UsageError(f"--config: no such config file: {path}")
  return path + sep + arg


def resolve_config_flag(argv: list[str]) -> list[str]:
  """argv with its --config value (either form) passed through resolve_config_file."""
  argv = list(argv)
  for i, arg in enumerate(argv):
    inline = re.fullmatch(r"(--?config=)(.*)", arg)
    if inline:
      argv[i] = inline.group(1) + resolve_config_file(inline.group(2))
    elif re.fullmatch(r"--?config", arg) and i + 1 < len(argv):
      argv[i + 1] = resolve_config_file(argv[i + 1])
  return argv


def unknown_key_message(flag: str, key: str, keys) -> str:
  """'FLAG: unknown config key 'KEY'. Did you mean NEAREST?' (or the keys)."""
  nearest = difflib.get_close_matches(key, list(keys), n=1)
  hint = (f"Did you mean {nearest[0]}?" if nearest else
          f"The keys are {', '.join(sorted(keys))}.")
  return f"{flag}: unknown config key {key!r}. {hint}"


def _define_flags(flag_values: flags.FlagValues) -> None:
  flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics; "
                      "rerun with the same one to resume.", flag_values=flag_values)
  flags.DEFINE_list("allow_config_change", [], "Config keys that may differ "
                    "from the run's config.json when resuming.",
                    flag_values=flag_values)
  flags.DEFINE_bool("multihost", False, "Start JAX's multi-process runtime "
                    "(jax.distributed.initialize) before training: one process "
                    "per host, found from the cluster (Slurm, Kubernetes, MPI) "
                    "or from the three flags below.", flag_values=flag_values)
  flags.DEFINE_string("coordinator_address", None, "--multihost: HOST:PORT of "
                      "process 0 (default: from the cluster).",
                      flag_values=flag_values)
  flags.DEFINE_integer("num_processes", None, "--multihost: how many processes "
                       "(default: from the cluster).", flag_values=flag_values)
  flags.DEFINE_integer("process_id", None, "--multihost: this process's index, "
                       "0..num_processes-1 (default: from the cluster).",
                       flag_values=flag_values)
  cli.define_debug_flag(flag_values)


def start_processes(flag_values: flags.FlagValues) -> None:
  """jax.distributed.initialize when --multihost or the environment asks for
  it; UsageError for process flags without --multihost."""
  manual = {name: flag_values[name].value for name in
            ("coordinator_address", "num_processes", "process_id")}
  if not (flag_values.multihost or devices.multihost_requested()):
    given = [f"--{name}" for name, value in manual.items() if value is not None]
    if given:
      raise cli.UsageError(f"{', '.join(given)}: only with --multihost")
    return
  devices.initialize_multihost(**manual)


def _define_config_flag(flag_values: flags.FlagValues, argv: list[str],
                        default_config: str) -> None:
  """--config and its --config.KEY overrides; loads the default config now
  when argv has no --config."""
  config_flags.DEFINE_config_file("config", default_config,
                                  "Config file (FILE or FILE:ARG).",
                                  flag_values=flag_values, lock_config=True,
                                  sys_argv=argv)


def _share_global_flags(flag_values: flags.FlagValues) -> None:
  """Adds the process's absl flags (logging's --verbosity, a launcher's own
  flags such as nmt's --bleu) that flag_values does not define itself."""
  for name in list(flags.FLAGS):
    flag = flags.FLAGS[name]
    if (name == flag.name and name not in _ABSL_HELP_FLAG_NAMES
        and name not in flag_values and flag.short_name not in flag_values):
      flag_values[name] = flag


def _load_config_without_overrides(argv: list[str], default_config: str):
  flag_values = flags.FlagValues()
  plain = [arg for arg in argv if not _CONFIG_OVERRIDE.match(arg)]
  config_flags.DEFINE_config_file("config", default_config, "",
                                  flag_values=flag_values, lock_config=True,
                                  sys_argv=plain)
  flag_values(plain, known_only=True)
  return flag_values.config


def _unknown_override(argv: list[str], default_config: str) -> str | None:
  """The message for the first --config.KEY whose KEY the config lacks."""
  config = _load_config_without_overrides(argv, default_config)
  for arg in argv[1:]:
    override = _CONFIG_OVERRIDE.match(arg)
    if override:
      key = override.group(1).split(".")[0]
      if key not in config:
        return unknown_key_message(f"--config.{override.group(1)}", key, config.keys())
  return None


def _flag_error_message(error: flags.Error) -> str:
  """cli.flag_error_message, with a --config.KEY value that does not parse
  as KEY's type described by KEY's rule."""
  text = cli.flag_error_message(error)
  override = re.match(r"(--config\.(\w+)=[^:]*): ", text)
  if override and rules.describe(override.group(2)):
    return f"{override.group(1)}: expected {rules.describe(override.group(2))}"
  return text


def _parse_flags(argv: list[str], default_config: str) -> flags.FlagValues:
  flag_values = flags.FlagValues()
  _define_flags(flag_values)
  _share_global_flags(flag_values)
  try:
    _define_config_flag(flag_values, argv, default_config)
    rest = flag_values(argv)
  except flags.Error as e:
    raise cli.UsageError(_flag_error_message(e)) from e
  except (AttributeError, KeyError) as e:  # ml_collections: --config.KEY unknown
    unknown = _unknown_override(argv, default_config)
    if unknown is None:
      raise
    raise cli.UsageError(unknown) from e
  if len(rest) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(rest[1:])}")
  if not flags.FLAGS.is_parsed():  # library code may read the shared flags
    flags.FLAGS.mark_as_parsed()
  return flag_values


def _check_allowed_keys(keys: tuple[str, ...], config) -> None:
  for key in keys:
    if key not in config:
      raise cli.UsageError(unknown_key_message("--allow_config_change", key,
                                               config.keys()))


def parse_args(argv: list[str], default_config: str) -> LaunchArgs:
  """The checked command line; UsageError or rules.ConfigError (both
  ValueErrors) name the flag or key. Writes nothing."""
  argv = resolve_config_flag(argv)
  flag_values = _parse_flags(argv, resolve_config_file(default_config))
  workdir = cli.check_workdir_flag(flag_values.workdir)
  config = flag_values.config
  allowed = tuple(key.strip() for key in flag_values.allow_config_change)
  _check_allowed_keys(allowed, config)
  start_processes(flag_values)  # before anything asks JAX for its devices
  train.validate_config(config)
  return LaunchArgs(config=config, workdir=workdir, allow_config_change=allowed,
                    debug=flag_values.debug, flag_values=flag_values)


def check_workdir_path(workdir: str) -> None:
  """OSError naming the path when the workdir is a file, sits under a file,
  or cannot be written (read-only, no permission), before training starts."""
  path = os.path.abspath(os.path.expanduser(workdir))
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise NotADirectoryError(errno.ENOTDIR, "not a directory (--workdir must be "
                             "a directory or a new path)", existing)
  if not os.access(existing, os.W_OK | os.X_OK):
    raise PermissionError(errno.EACCES, "cannot write here (read-only or no "
                          "permission); choose another --workdir", existing)


def _accepts(function: Callable[..., Any], parameter: str) -> bool:
  return parameter in inspect.signature(function).parameters


def _train(args: LaunchArgs) -> dict[str, Any]:
  options = {}
  if args.allow_config_change:
    if not _accepts(train.train_and_evaluate, "allow_config_change"):
      raise cli.UsageError("--allow_config_change: this version of "
                           "train.train_and_evaluate does not support it")
    options["allow_config_change"] = list(args.allow_config_change)
  return train.train_and_evaluate(args.config, args.workdir, **options)


def _quiet_logging(flag_values: flags.FlagValues) -> None:
  if "verbosity" in flag_values and not flag_values["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO


def _print_help() -> None:
  launcher = sys.modules.get("__main__")
  print((getattr(launcher, "__doc__", None) or "").strip())
  print()
  print(__doc__.strip())


def run(argv: list[str], default_config: str,
        after_training: Callable[[str], None] | None = None) -> int:
  """Parses argv, trains, prints the summary as JSON; returns the exit code.

  A user error is printed as one 'error: ...' line and returns its code
  (experiments/cli.py); with --debug it is raised instead. after_training
  (workdir), if given, runs once training has finished (e.g. decoding the
  test split); its errors are reported like training's.
  """
  if HELP_FLAGS.intersection(argv[1:]):
    _print_help()
    return cli.EXIT_OK
  try:
    args = parse_args(argv, default_config)
    _quiet_logging(args.flag_values)
    check_workdir_path(args.workdir)
    summary = _train(args)
    print(json.dumps(summary, indent=2))
    if after_training is not None:
      after_training(args.workdir)
  except (Exception, KeyboardInterrupt) as error:  # pylint: disable=broad-except
    return cli.report(error, cli.debug_requested(argv))
  return cli.EXIT_OK


def main(default_config: str,
         after_training: Callable[[str], None] | None = None) -> None:
  """The launchers' entry point: run(sys.argv, ...) and exit with its code."""
  logging.use_absl_handler()
  sys.exit(run(sys.argv, default_config, after_training))
