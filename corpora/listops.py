"""ListOps (Nangia & Bowman 2018): nested list operations over digits, as a TFDS builder.

An example is a prefix expression and its value, e.g.

  [MAX 2 9 [MIN 4 7 ] 0 ]   ->   9

Operators: MIN, MAX, MED (median, truncated to an integer as in the
original `make_data.py`: int(np.median)), SM (sum modulo 10); operands are
digits 0-9 or nested expressions. Generation follows `make_data.py`
(github.com/nyu-mll/spinn, listops): the root is an operator; every argument
below it is an operator with probability VALUE_P = 0.25 (else a digit);
each operator takes 2 to MAX_ARGS = 5 arguments, operators are drawn
uniformly. Limits: operator nesting depth <= MAX_DEPTH = 10, and examples
longer than MAX_LENGTH = 100 tokens are drawn again. Every expression is
unique across all three splits (a repeat is drawn again).

Sizes: 90,000 train / 1,000 validation / 10,000 test, from fixed seeds, so
every machine builds the same files (Nangia & Bowman: 90k train, 10k test).

The gold tree (`gold_tree`) is the paper's binarisation: each operator token
is a leaf; it is merged with its first argument, the result with each next
argument in turn, and finally with the closing ']' leaf:
  ( ( ( ( [MAX 2 ) 9 ) <[MIN 4 7 ]> ) 0 ) ] )
Node j < T is the leaf of token j, internal nodes follow. `syntax_tree`
gives the expression's own n-ary tree instead (an operator node's children
are its arguments; ']' dropped), for compositions of any arity.

Records: {'text': the expression, tokens separated by spaces, 'label': its
value (int32), 'index': the example's position}. Files are ArrayRecord,
read with `tfds.data_source` (no TensorFlow); `info.metadata[split]` holds
the count and sha256 of the split, checked on every read.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import tensorflow_datasets as tfds

from corpora import store
from models.checks import check_one_of

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
DIGITS = tuple(str(d) for d in range(10))
VOCAB = OPERATORS + (END,) + DIGITS          # token id = position here
VALUE_P = 0.25
MAX_ARGS = 5
MAX_DEPTH = 10
MAX_LENGTH = 100
SPLIT_SIZES = {"train": 90_000, "validation": 1_000, "test": 10_000}
_SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}
_DATA_SEED = 20180601


def apply_operator(op: str, values: Sequence[int]) -> int:
  """MIN, MAX, MED (int of the median), SM (sum mod 10) of digits."""
  if op == "[MIN":
    return min(values)
  if op == "[MAX":
    return max(values)
  if op == "[MED":
    return int(np.median(values))
  if op == "[SM":
    return sum(values) % 10
  raise ValueError(f"op: unknown ListOps operator {op!r}; known are {OPERATORS}")


def generate_expression(rng: np.random.Generator, depth: int = 1,
                        max_depth: int = MAX_DEPTH):
  """A random expression: a digit (int) or (operator, [arguments])."""
  if depth > 1 and (depth > max_depth or rng.random() > VALUE_P):
    return int(rng.integers(10))
  args = [generate_expression(rng, depth + 1, max_depth)
          for _ in range(int(rng.integers(2, MAX_ARGS + 1)))]
  return OPERATORS[int(rng.integers(len(OPERATORS)))], args


def to_tokens(expr) -> list[str]:
  if isinstance(expr, int):
    return [str(expr)]
  op, args = expr
  return [op] + [t for a in args for t in to_tokens(a)] + [END]


def value_of(expr) -> int:
  if isinstance(expr, int):
    return expr
  op, args = expr
  return apply_operator(op, [value_of(a) for a in args])


def depth_of(expr) -> int:
  """Operator nesting depth (a digit: 0)."""
  if isinstance(expr, int):
    return 0
  return 1 + max(depth_of(a) for a in expr[1])


def generate_splits(sizes: dict[str, int] | None = None, seed: int = _DATA_SEED,
                    max_length: int = MAX_LENGTH,
                    max_depth: int = MAX_DEPTH) -> dict[str, list[tuple[str, int]]]:
  """{split: [(text, label)]}, unique across splits, from fixed seeds."""
  sizes = dict(SPLIT_SIZES if sizes is None else sizes)
  seen: set[str] = set()
  out = {}
  for split in ("train", "validation", "test"):
    rng = np.random.default_rng([seed, _SPLIT_SEEDS[split]])
    examples = []
    while len(examples) < sizes.get(split, 0):
      expr = generate_expression(rng, 1, max_depth)
      tokens = to_tokens(expr)
      text = " ".join(tokens)
      if len(tokens) > max_length or text in seen:
        continue
      seen.add(text)
      examples.append((text, value_of(expr)))
    out[split] = examples
  return out


def gold_tree(tokens: Sequence[str]) -> list[list[int]]:
  """Child lists of the paper's binary tree over `tokens` (leaves 0..T-1).

  Raises ValueError for a token sequence that is not one expression.
  """
  children: list[list[int]] = [[] for _ in tokens]
  stack: list[int] = []          # open operators' partial nodes
  done = None                    # the last complete expression's node
  for j, token in enumerate(tokens):
    if token in OPERATORS:
      stack.append(j)
      continue
    if token == END:
      if not stack:
        raise ValueError(f"tokens: unmatched ']' at position {j}")
      children.append([stack.pop(), j])
      node = len(children) - 1
    elif token in DIGITS:
      node = j
    else:
      raise ValueError(f"tokens: unknown token {token!r} at position {j}")
    if stack:
      children.append([stack[-1], node])
      stack[-1] = len(children) - 1
    elif done is None and j == len(tokens) - 1:
      done = node
    else:
      raise ValueError(f"tokens: more than one expression (position {j})")
  if stack or done is None:
    raise ValueError(f"tokens: unfinished expression {' '.join(tokens)[:80]!r}")
  return children


def syntax_tree(tokens: Sequence[str]) -> tuple[list[str], list[list[int]]]:
  """The expression's own n-ary tree: one node per operator (its children
  are its arguments, in order) and per digit; ']' tokens are dropped.
  -> (node tokens, child lists), nodes in token order (root = node 0)."""
  labels: list[str] = []
  children: list[list[int]] = []
  stack: list[int] = []
  for j, token in enumerate(tokens):
    if token == END:
      if not stack:
        raise ValueError(f"tokens: unmatched ']' at position {j}")
      stack.pop()
      continue
    if token not in OPERATORS and token not in DIGITS:
      raise ValueError(f"tokens: unknown token {token!r} at position {j}")
    node = len(labels)
    labels.append(token)
    children.append([])
    if stack:
      children[stack[-1]].append(node)
    elif node:
      raise ValueError(f"tokens: more than one expression (position {j})")
    if token in OPERATORS:
      stack.append(node)
  if stack or not labels:
    raise ValueError(f"tokens: unfinished expression {' '.join(tokens)[:80]!r}")
  return labels, children


def fingerprint(examples: Sequence[tuple[str, int]]) -> str:
  return store.sha256_lines(f"{label}\t{text}" for text, label in examples)


class Listops(tfds.core.GeneratorBasedBuilder):
  """ListOps (Nangia & Bowman 2018), generated offline from fixed seeds."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "90k/1k/10k, depth <= 10, length <= 100 tokens."}
  SIZES = SPLIT_SIZES  # tests shrink it on a subclass

  def _info(self) -> tfds.core.DatasetInfo:
    return store.indexed_info(self, {
        "text": tfds.features.Text(),
        "label": tfds.features.Scalar(dtype=np.int32)})

  def _split_generators(self, dl_manager):
    del dl_manager
    splits = generate_splits(self.SIZES)
    for split, examples in splits.items():
      self.info.metadata[split] = {"num_examples": len(examples),
                                   "sha256": fingerprint(examples)}
    return {split: self._generate_examples(examples)
            for split, examples in splits.items()}

  def _generate_examples(self, examples):
    for index, (text, label) in enumerate(examples):
      yield index, {"text": text, "label": label, "index": index}


def _read_verified(builder, split: str) -> list[tuple[str, int]]:
  records, expected = store.stored_split(builder, split)
  examples = [(store.text(r["text"]), int(r["label"])) for r in records]
  if (len(examples) != expected["num_examples"]
      or fingerprint(examples) != expected["sha256"]):
    raise store.CorpusError("the examples read back differ from those written")
  return examples


def read_split(split: str, *, data_dir: str | None = None,
               builder_cls=Listops) -> list[tuple[str, int]]:
  """[(text, label)] of 'train', 'validation' or 'test', built on first use
  under data_dir (else $RNN_DATA_DIR, else ~/.cache/rnn_jax/tfds); damaged
  files are rebuilt once."""
  import corpora  # pylint: disable=g-import-not-at-top
  check_one_of("split", split, list(SPLIT_SIZES))
  data_dir = corpora.resolve_data_dir(data_dir)
  return store.read_built(
      lambda: builder_cls(data_dir=data_dir, file_format="array_record"),
      lambda builder: _read_verified(builder, split), name=builder_cls.name,
      path=os.path.join(data_dir, builder_cls.name, str(builder_cls.VERSION)))
