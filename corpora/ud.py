"""Dependency trees from a UD-style treebank shipped in a PyPI package, binarised.

Source: `turkish-treebanks==1.0.0` (the Turkish Web Treebank, CoNLL-U with
UPOS and heads): `data/web.conllu` (2,540 sentences) and `data/wiki.conllu`
(2,309). The wheel installs them in a top-level `data/` folder of
site-packages, so they are found through the distribution's file list
(`importlib.metadata`), never by importing a `data` package.

Splits (deterministic): sentence k of web then wiki goes to 'test' if
k % 10 == 0, to 'validation' if k % 10 == 1, else to 'train'.

`binarize` turns a projective dependency tree into a binary bracketing over
its tokens: a head first takes its right dependents (nearest first), then
its left dependents (nearest first), one merge each. Non-projective
sentences have no such bracketing and are skipped (`read_split` reports how
many). Multiword-token ranges ('1-2') and empty nodes ('1.1') are skipped.
"""

from __future__ import annotations

import importlib.metadata
from typing import NamedTuple, Sequence

FILES = ("data/web.conllu", "data/wiki.conllu")
PACKAGE = "turkish-treebanks"


class Sentence(NamedTuple):
  forms: list[str]
  upos: list[str]
  heads: list[int]   # 0 = root, else 1-based head index


def parse_conllu(text: str) -> list[Sentence]:
  sentences, rows = [], []
  for line in text.splitlines() + [""]:
    line = line.rstrip("\n")
    if not line.strip():
      if rows:
        sentences.append(Sentence([r[1] for r in rows], [r[3] for r in rows],
                                  [int(r[6]) for r in rows]))
        rows = []
      continue
    if line.startswith("#"):
      continue
    cols = line.split("\t")
    if len(cols) != 10:
      raise ValueError(f"conllu: expected 10 tab-separated columns, got "
                       f"{len(cols)}: {line[:80]!r}")
    if "-" in cols[0] or "." in cols[0]:
      continue
    rows.append(cols)
  return sentences


def source_files() -> list[str]:
  """Paths of the treebank files inside the installed wheel."""
  try:
    dist = importlib.metadata.distribution(PACKAGE)
  except importlib.metadata.PackageNotFoundError as e:
    raise ImportError(f"the UD treebank needs the package {PACKAGE}==1.0.0 "
                      f"(pip install -r requirements.txt)") from e
  paths = []
  for name in FILES:
    path = dist.locate_file(name)
    if not path.exists():
      raise FileNotFoundError(f"{PACKAGE} is installed but {name} is missing "
                              f"at {path}")
    paths.append(str(path))
  return paths


def binarize(heads: Sequence[int]) -> list[list[int]] | None:
  """Heads (1-based, 0 = root) -> child lists of a binary tree whose leaves
  0 .. n-1 are the tokens and internal nodes follow in merge order; None if
  the tree is not projective or not a single tree."""
  n = len(heads)
  deps = [[] for _ in range(n + 1)]
  for i, h in enumerate(heads, start=1):
    if not 0 <= h <= n or h == i:
      return None
    deps[h].append(i)
  if len(deps[0]) != 1:
    return None
  children: list[list[int]] = [[] for _ in range(n)]
  seen = 0

  def build(head: int) -> tuple[int, int, int]:
    """-> (node, start, end) of head's subtree; raises on a gap."""
    nonlocal seen
    seen += 1
    node, start, end = head - 1, head - 1, head
    # Right dependents nearest first, then left ones nearest first.
    right = sorted(d for d in deps[head] if d > head)
    left = sorted((d for d in deps[head] if d < head), reverse=True)
    for d in right + left:
      sub, s, e = build(d)
      on_right = d > head
      if (s != end) if on_right else (e != start):
        raise _NonProjective
      children.append([node, sub] if on_right else [sub, node])
      node = len(children) - 1
      start, end = (start, e) if on_right else (s, end)
    return node, start, end

  try:
    build(deps[0][0])
  except (_NonProjective, RecursionError):
    return None
  return children if seen == n else None


class _NonProjective(Exception):
  pass


def read_split(split: str, *, max_length: int = 0):
  """-> ([(upos tags, forms, binary child lists)], skipped non-projective)."""
  if split not in ("train", "validation", "test"):
    raise ValueError(f"split: expected 'train', 'validation' or 'test', got {split!r}")
  sentences = []
  for path in source_files():
    with open(path, encoding="utf-8") as f:
      sentences.extend(parse_conllu(f.read()))
  which = {0: "test", 1: "validation"}
  out, skipped = [], 0
  for k, sentence in enumerate(sentences):
    if which.get(k % 10, "train") != split:
      continue
    if max_length and len(sentence.forms) > max_length:
      continue
    tree = binarize(sentence.heads)
    if tree is None:
      skipped += 1
      continue
    out.append((sentence.upos, sentence.forms, tree))
  return out, skipped
