"""Text lines from stdin for the command-line tools, and the tools' shared run.

The tools that read text (translate, sample --prompt=-, and any future predict
command) read stdin as bytes, one line at a time, so that one bad line costs
that line only:

  * a line that is not valid UTF-8 is decoded with U+FFFD for the bytes that
    are not, and comes with a note;
  * a line longer than max_bytes is skipped (read past in bounded chunks,
    never held whole) and comes with a note, to be answered with an empty
    output line;
  * the line end (\\n or \\r\\n) and a UTF-8 byte order mark on line 1 are
    dropped; nothing else (\\r, \\f, U+2028 inside a line) splits a line.

The tool writes one output line per input line and its notes to stderr as
"line N: NOTE" (`print_note`).
"""

from __future__ import annotations

import codecs
import sys
from typing import BinaryIO, Callable, Iterator, NamedTuple, TextIO

from absl import app, flags, logging

from experiments import cli

MAX_LINE_BYTES = 1 << 20       # a longer line is skipped with a note
_CHUNK = 1 << 16               # bytes read at a time past an over-long line


class Line(NamedTuple):
  """One input line.

  number: 1 for the first line.
  text: the line, decoded, without its line end; '' when skipped.
  note: why the text differs from the bytes read ('' when it does not).
  skipped: the line could not be used (too long): answer it with ''.
  """
  number: int
  text: str
  note: str = ""
  skipped: bool = False


def decode_line(number: int, raw: bytes) -> Line:
  """Bytes of line `number` (line end included or not) -> Line."""
  raw = raw.removesuffix(b"\n").removesuffix(b"\r")
  if number == 1:
    raw = raw.removeprefix(codecs.BOM_UTF8)
  try:
    return Line(number, raw.decode("utf-8"))
  except UnicodeDecodeError as e:
    bad = raw.decode("utf-8", errors="replace").count("\ufffd")
    return Line(number, raw.decode("utf-8", errors="replace"),
                f"not valid UTF-8 (first bad byte at offset {e.start}); "
                f"{bad} undecodable byte sequence(s) read as U+FFFD")


def _skip_rest_of_line(stream: BinaryIO) -> int:
  """Reads past the rest of the current line; returns the bytes read."""
  skipped = 0
  while True:
    chunk = stream.readline(_CHUNK)
    skipped += len(chunk)
    if not chunk or chunk.endswith(b"\n"):
      return skipped


def read_lines(stream: BinaryIO | None = None, *,
               max_bytes: int = MAX_LINE_BYTES) -> Iterator[Line]:
  """The lines of a binary stream (default: stdin's bytes), lazily.

  A line of more than max_bytes bytes (line end excluded) is a skipped Line
  with a note; no more than max_bytes + 1 bytes of it are held at once.
  """
  if max_bytes < 1:
    raise ValueError(f"max_bytes: expected a positive integer, got {max_bytes}")
  stream = sys.stdin.buffer if stream is None else stream
  number = 0
  while True:
    raw = stream.readline(max_bytes + 1)
    if not raw:
      return
    number += 1
    if len(raw) > max_bytes and not raw.endswith(b"\n"):
      total = len(raw) + _skip_rest_of_line(stream)
      yield Line(number, "", f"longer than {max_bytes} bytes ({total} with its "
                 f"line end); skipped", skipped=True)
      continue
    yield decode_line(number, raw)


def join_notes(*notes: str) -> str:
  return "; ".join(note for note in notes if note)


def print_note(number: int, note: str, stream: TextIO | None = None) -> None:
  """'line N: NOTE' on stderr (nothing for an empty note)."""
  if note:
    print(f"line {number}: {note}", file=stream or sys.stderr, flush=True)


def safe_stdout() -> None:
  """Output text that the terminal's encoding cannot show is replaced, not an
  error (e.g. PYTHONIOENCODING=ascii)."""
  if hasattr(sys.stdout, "reconfigure"):
    sys.stdout.reconfigure(errors="replace")


def run_tool(body: Callable[[flags.FlagValues], None]) -> None:
  """app.run for a tool that takes flags only (define them first).

  Adds --debug; a bad flag, a stray argument or a user error raised by
  body(FLAGS) is one 'error: ...' line with experiments/cli.py's exit code;
  logging is quiet (orbax warns on read-only opens) unless --verbosity is
  given.
  """
  if "debug" not in flags.FLAGS:
    cli.define_debug_flag()

  def run(argv: list[str]) -> None:
    f = flags.FLAGS
    if not f["verbosity"].present:
      logging.set_verbosity(logging.ERROR)
    with cli.user_errors_exit(f.debug):
      if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
      safe_stdout()
      body(f)

  app.run(run, flags_parser=cli.parse_flags)
