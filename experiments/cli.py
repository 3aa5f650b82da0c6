"""What every command-line tool shares: user errors as one line, exit codes,
--debug, and files read with their name in every message.

A user error (a bad flag, config key or value, a damaged file, a diverged run,
a workdir that is a file or read-only, a full disk) is printed as one line,
`error: MESSAGE`, naming the flag, key or path; --debug shows the traceback
instead. Anything else is a bug and keeps its traceback.

Exit codes:
  0    success
  1    a runtime error: a damaged checkpoint or file, a non-finite loss, a
       workdir in use by another run, a file-system error (no such file, not
       a directory, permission denied, read-only file system, disk full)
  2    a usage error: a bad flag, argument, config key or config value; the
       command needs changing, and nothing was written
  130  interrupted (Ctrl-C; train.RunInterrupted says where a rerun resumes)
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import sys
from typing import Any, Iterator

from absl import flags

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# train.py's error types, looked up by name where train is imported (a tool
# that does not import it cannot raise them); a name train lacks is skipped.
_TRAIN_RUNTIME_ERRORS = ("CheckpointError", "NonFiniteLossError", "WorkdirInUseError")
_TRAIN_INTERRUPTS = ("RunInterrupted",)
_FILE_SYSTEM_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError,
                       NotADirectoryError, PermissionError)
_FILE_SYSTEM_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT})


class UsageError(ValueError):
  """A bad command line: a flag, an argument, a config key or value."""


class CorruptFileError(ValueError):
  """A file the tool reads is damaged (not JSON, truncated, wrong shape)."""


def _train_errors(names: tuple[str, ...]) -> tuple[type, ...]:
  train = sys.modules.get("train")
  found = (getattr(train, name, None) for name in names)
  return tuple(t for t in found if isinstance(t, type))


def is_file_system_error(error: BaseException) -> bool:
  return isinstance(error, _FILE_SYSTEM_ERRORS) or (
      isinstance(error, OSError) and error.errno in _FILE_SYSTEM_ERRNOS)


def exit_code(error: BaseException) -> int | None:
  """The exit status for a user error; None for anything else (a bug)."""
  if isinstance(error, (KeyboardInterrupt, *_train_errors(_TRAIN_INTERRUPTS))):
    return EXIT_INTERRUPTED
  if isinstance(error, (CorruptFileError, json.JSONDecodeError,
                        *_train_errors(_TRAIN_RUNTIME_ERRORS))):
    return EXIT_RUNTIME
  if isinstance(error, (ValueError, flags.Error)):
    return EXIT_USAGE
  if is_file_system_error(error):
    return EXIT_RUNTIME
  return None


def one_line(text: str) -> str:
  return " ".join(text.split())


def message(error: BaseException) -> str:
  """The error as one line; an OSError as 'PATH: reason'."""
  if isinstance(error, KeyboardInterrupt):
    return "interrupted"
  if isinstance(error, OSError) and error.filename is not None:
    reason = error.strerror or str(error)
    target = f" -> {error.filename2}" if error.filename2 is not None else ""
    return one_line(f"{error.filename}{target}: {reason}")
  text = str(error) or type(error).__name__
  return one_line(re.sub(r"^\[Errno \d+\] ", "", text))


def _discard_stdout() -> None:
  """Points stdout at /dev/null, so the interpreter's last flush cannot fail."""
  devnull = os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, sys.stdout.fileno())


def report(error: BaseException, debug: bool = False) -> int:
  """Prints a user error as 'error: MESSAGE' on stderr and returns its exit
  code; re-raises a bug, and any error under --debug, with its traceback."""
  if isinstance(error, BrokenPipeError):  # the reader stopped, e.g. `| head`
    _discard_stdout()
    return EXIT_OK
  code = exit_code(error)
  if code is None or debug:
    raise error
  print(f"error: {message(error)}", file=sys.stderr, flush=True)
  return code


@contextlib.contextmanager
def user_errors_exit(debug: bool = False) -> Iterator[None]:
  """Exits with report()'s code on a user error raised inside."""
  try:
    yield
  except (Exception, KeyboardInterrupt) as error:  # pylint: disable=broad-except
    sys.exit(report(error, debug))


def debug_requested(argv: list[str]) -> bool:
  """Whether argv asks for --debug (read before flags parse, for their errors)."""
  return any(re.fullmatch(r"--?debug(=(true|t|1|yes))?", arg, re.IGNORECASE)
             for arg in argv[1:])


def flag_error_message(error: BaseException) -> str:
  """absl's flag errors as one readable line naming the flag."""
  text = str(error)
  required = re.match(r"(?:flag )?--(\w+)=None: Flag --\1 must have a value "
                      r"other than None", text)
  if required:
    return f"--{required.group(1)}: required"
  text = re.sub(r"^flag ", "", text)
  text = re.sub(r"\('Non-boolean argument to boolean flag', .*\)$",
                "expected true or false", text)
  if "Traceback (most recent call last)" in text:  # raised while loading a file
    flag = re.match(r"(--[\w.]+=\S+?): ", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cause = re.sub(r"^[\w.]*(Error|Exception): ", "", lines[-1])
    return f"{flag.group(1)}: {cause}" if flag else cause
  return one_line(text)


def parse_flags(argv: list[str]) -> list[str]:
  """app.run's flags_parser: a bad flag is one 'error:' line and exit code 2."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    if debug_requested(argv):
      raise
    sys.exit(report(UsageError(flag_error_message(error))))


def define_debug_flag(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """--debug; once per FlagValues (several tools may share the process's)."""
  if "debug" in flag_values:
    return
  flags.DEFINE_bool("debug", False, "Show the traceback of a user error instead "
                    "of one 'error:' line.", flag_values=flag_values)


def check_workdir_flag(workdir: str | None, flag: str = "--workdir") -> str:
  """UsageError for a missing or empty directory flag (an empty one would mean
  the current directory, silently); returns it."""
  if workdir is None:
    raise UsageError(f"{flag}: required")
  if not workdir.strip():
    raise UsageError(f"{flag}: empty; give a directory ({flag}=. for the "
                     f"current one)")
  return workdir


def read_json(path: str) -> Any:
  """The JSON value in `path`; CorruptFileError naming it if it does not parse."""
  text = _read_text(path)
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise CorruptFileError(f"{path}: not valid JSON ({e.msg} at line {e.lineno} "
                           f"column {e.colno}); the file is damaged") from None


def read_jsonl(path: str) -> list[dict[str, Any]]:
  """One JSON object per line of `path` (blank lines skipped);
  CorruptFileError naming the file and line otherwise."""
  records = []
  for number, line in enumerate(_read_text(path).splitlines(), 1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      raise CorruptFileError(f"{path} line {number}: not valid JSON ({e.msg}); "
                             f"the file is damaged") from None
    if not isinstance(record, dict):
      raise CorruptFileError(f"{path} line {number}: expected a JSON object, "
                             f"got {type(record).__name__}")
    records.append(record)
  return records


def _read_text(path: str) -> str:
  with open(path, "rb") as f:
    data = f.read()
  try:
    return data.decode("utf-8")
  except UnicodeDecodeError as e:
    raise CorruptFileError(f"{path}: not UTF-8 text (byte {e.start}); the file "
                           f"is damaged") from None
