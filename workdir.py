"""A training workdir's own files: the lock and atomically written JSON.

`lock(path)` makes one process at a time the owner of a workdir: a second
one stops with one line naming the owner (pid, host). The lock is an
advisory `flock` on WORKDIR/LOCK_FILE, which the kernel releases when its
process dies, however it dies; a lock file left by a killed process is
therefore stale and is taken over. The file holds the owner's pid, host and
start time for that message and is removed on a clean release.

`write_json(path, value)` replaces a file in one step (write to a temporary
file, then rename), so a kill at any instant leaves the old or the new
contents, never a mix.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from typing import Any, Iterator

LOCK_FILE = "lock"


class WorkdirInUseError(RuntimeError):
  """Another live process holds the workdir's lock."""


def write_json(path: str, value: Any, *, sort_keys: bool = False) -> None:
  """Writes `value` as JSON to `path` atomically (temporary file + rename)."""
  temporary = f"{path}.tmp-{os.getpid()}"
  with open(temporary, "w") as f:
    json.dump(value, f, indent=2, sort_keys=sort_keys)
    f.flush()
    os.fsync(f.fileno())
  os.replace(temporary, path)


def read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def _owner_description(path: str) -> str:
  """'process 123 on host h (since ...)' from a lock file, as far as it says."""
  try:
    owner = read_json(path)
    started = time.strftime("%Y-%m-%d %H:%M:%S",
                            time.localtime(owner.get("started", 0)))
    return (f"process {owner.get('pid')} on host {owner.get('host')} "
            f"(since {started})")
  except (OSError, ValueError, AttributeError):
    return "another process (its lock file is being written)"


def _record_owner(fd: int) -> None:
  os.ftruncate(fd, 0)
  owner = {"pid": os.getpid(), "host": socket.gethostname(),
           "started": time.time()}
  os.pwrite(fd, json.dumps(owner).encode(), 0)
  os.fsync(fd)


def _acquire(path: str, purpose: str) -> int:
  """Opens and flocks `path`; -> its fd. Retries when the file was replaced
  between open and flock (a previous owner released it meanwhile)."""
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      os.close(fd)
      if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
        raise
      raise WorkdirInUseError(
          f"workdir {os.path.dirname(path)} is in use by "
          f"{_owner_description(path)}; wait for it to finish or stop it "
          f"before {purpose} (lock file {path})") from None
    try:
      same_file = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
      same_file = False
    if same_file:
      return fd
    os.close(fd)


@contextlib.contextmanager
def lock(path: str, purpose: str = "training in it") -> Iterator[None]:
  """Holds WORKDIR/LOCK_FILE for the duration; WorkdirInUseError if held.

  Args:
    path: the workdir; created if missing.
    purpose: what the caller is about to do, for the error message
      (e.g. 'evaluating it').

  A lock left by a process that no longer runs is taken over, with a line
  saying so: the kernel dropped its flock when the process died.
  """
  path = os.path.abspath(os.path.expanduser(path))
  os.makedirs(path, exist_ok=True)
  lock_path = os.path.join(path, LOCK_FILE)
  fd = _acquire(lock_path, purpose)
  try:
    if os.fstat(fd).st_size:  # its owner died without releasing it
      print(f"workdir {path}: taking over the stale lock of "
            f"{_owner_description(lock_path)}, which no longer runs", flush=True)
    _record_owner(fd)
    yield
  finally:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(lock_path)  # while still held: nobody can hold the old inode
    os.close(fd)
