"""The README and docs/: the core-API example runs and gives the shapes its
comments claim, the README stays short, every relative link resolves, and no
tracked text speaks of how the project was made instead of what it is."""

import glob
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
MAX_README_LINES = 300
# Words of a lab notebook, not of documentation.
HISTORY = re.compile(r"[Ss]ession [0-9]|[Ii]ssue [0-9]|lent (GPU|machine)")

FENCED_BLOCK = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
INLINE_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]\n]+\]:\s*<?([^\s>]+)>?", re.M)


def _read(path):
  with open(path, encoding="utf-8") as f:
    return f.read()


def test_core_api_example_runs():
  text = _read(README)
  block = re.search(r"```python\n(import jax, jax.numpy.*?)```", text, re.S)
  assert block, "README lost its core API example"
  namespace = {}
  exec(block.group(1), namespace)  # pylint: disable=exec-used
  assert namespace["ys"].shape == (4, 10, 32)
  assert namespace["final"].c.shape == (4, 32)
  assert namespace["bi"].shape == (4, 10, 64)
  assert namespace["top"].shape == (4, 10, 32) and len(namespace["finals"]) == 2


def test_readme_is_short():
  lines = _read(README).count("\n")
  assert lines <= MAX_README_LINES, (
      f"README.md has {lines} lines (at most {MAX_README_LINES}); move detail "
      f"to docs/")


def markdown_links(text):
  """Link targets of inline links, images and reference definitions, outside
  code blocks and code spans."""
  text = FENCED_BLOCK.sub("", text)
  targets = REFERENCE_DEFINITION.findall(text)
  text = INLINE_CODE.sub("", text)
  return INLINE_LINK.findall(text) + targets


def test_markdown_links_parser():
  text = ("[a](docs/x.md#part) ![img](p.png) [web](https://e.org) [top](#here)\n"
          "`[not](a link)`\n```\n[no](code.md)\n```\n[ref]: ../y/ \n")
  assert sorted(markdown_links(text)) == sorted(
      ["docs/x.md#part", "p.png", "https://e.org", "#here", "../y/"])


def _markdown_files():
  return [README] + sorted(
      glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))


def _relative_file_target(target):
  """The path part of a link to a file in the repo, or None for web links and
  pure anchors."""
  if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
    return None
  return target.split("#", 1)[0].split("?", 1)[0]


def test_every_relative_link_resolves():
  broken = []
  for path in _markdown_files():
    for target in markdown_links(_read(path)):
      relative = _relative_file_target(target)
      if relative is None:
        continue
      resolved = os.path.normpath(os.path.join(os.path.dirname(path), relative))
      inside = resolved == ROOT or resolved.startswith(ROOT + os.sep)
      if not (inside and os.path.exists(resolved)):
        broken.append(f"{os.path.relpath(path, ROOT)}: {target}")
  assert not broken, "links to files that do not exist:\n" + "\n".join(broken)


def _tracked_files():
  try:
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], cwd=ROOT, check=True,
                         capture_output=True).stdout
  except (OSError, subprocess.CalledProcessError):
    pytest.skip("not a git checkout")
  return [name for name in out.decode("utf-8").split("\0") if name]


def test_no_history_in_tracked_text():
  found = []
  for name in _tracked_files():
    path = os.path.join(ROOT, name)
    if not os.path.isfile(path):  # deleted in the working tree
      continue
    with open(path, "rb") as f:
      data = f.read()
    if b"\0" in data[:8192]:
      continue  # binary
    try:
      text = data.decode("utf-8")
    except UnicodeDecodeError:
      continue
    for number, line in enumerate(text.splitlines(), 1):
      if HISTORY.search(line):
        found.append(f"{name}:{number}: {line.strip()[:120]}")
  assert not found, "history of the project's making:\n" + "\n".join(found)
