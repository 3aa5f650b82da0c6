"""Reading stdin lines as bytes: bad UTF-8, over-long and empty lines cost
that line only."""

import io

import pytest

from experiments import line_input


def _read(data: bytes, **kwargs):
  return list(line_input.read_lines(io.BytesIO(data), **kwargs))


def test_plain_lines_and_line_ends():
  lines = _read(b"one\r\ntwo\n\nthree")
  assert [(l.number, l.text, l.note, l.skipped) for l in lines] == [
      (1, "one", "", False), (2, "two", "", False), (3, "", "", False),
      (4, "three", "", False)]
  assert _read(b"") == []


def test_only_newline_splits_lines():
  lines = _read("a\rb\x0cc\u2028d\n".encode())
  assert [l.text for l in lines] == ["a\rb\x0cc\u2028d"]


def test_byte_order_mark_is_dropped_on_the_first_line_only():
  bom = b"\xef\xbb\xbf"
  lines = _read(bom + b"caf\xc3\xa9\n" + bom + b"x\n")
  assert [l.text for l in lines] == ["café", "\ufeffx"]


def test_invalid_utf8_is_replaced_with_a_note():
  lines = _read(b"good\nbad \xff\xfe end\n\xc3\n\xe2\x82\nlast\n")
  assert [l.text for l in lines] == ["good", "bad \ufffd\ufffd end", "\ufffd",
                                     "\ufffd", "last"]
  assert lines[0].note == "" and lines[4].note == ""
  assert lines[1].note == ("not valid UTF-8 (first bad byte at offset 4); 2 "
                           "undecodable byte sequence(s) read as U+FFFD")
  assert "offset 0" in lines[2].note
  assert not any(l.skipped for l in lines)


@pytest.mark.parametrize("line_end", [b"\n", b""])
def test_over_long_line_is_skipped_and_the_next_one_read(line_end):
  data = b"short\n" + b"x" * 25 + b"\n" + b"y" * 10 + line_end
  lines = _read(data, max_bytes=10)
  assert [(l.number, l.text, l.skipped) for l in lines] == [
      (1, "short", False), (2, "", True), (3, "y" * 10, False)]
  assert lines[1].note == "longer than 10 bytes (26 with its line end); skipped"


def test_over_long_line_is_read_in_bounded_chunks(monkeypatch):
  monkeypatch.setattr(line_input, "_CHUNK", 7)
  sizes = []

  class Recording(io.BytesIO):
    def readline(self, size=-1):
      sizes.append(size)
      return super().readline(size)

  lines = list(line_input.read_lines(Recording(b"z" * 100 + b"\nok\n"),
                                     max_bytes=10))
  assert [l.text for l in lines] == ["", "ok"]
  assert -1 not in sizes and max(sizes) == 11


def test_bad_max_bytes():
  with pytest.raises(ValueError, match="max_bytes: expected a positive"):
    _read(b"x", max_bytes=0)


def test_notes_are_joined_and_printed_with_the_line_number():
  err = io.StringIO()
  line_input.print_note(3, line_input.join_notes("", "a", "", "b"), err)
  line_input.print_note(4, "", err)
  assert err.getvalue() == "line 3: a; b\n"
