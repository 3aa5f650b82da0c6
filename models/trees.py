"""Trees as arrays: checking, levels, bucketing, batching and schedules.

Dimension legend:
  B = trees in a batch, M = node slots of the whole batch (all trees' nodes
  on one flat axis, tree after tree, then padding; bucketed), N = nodes of
  the largest tree (bucketed), A = child slots per node, S = scheduling
  steps, W = node slots per step (both bucketed).

A tree is a list of nodes; node j has an input token (or -1 for none: an
internal node without a word) and a list of child indices. `batch_trees`
checks every tree (`MalformedTreeError` names the tree and the node), gives
each node its level (0 for leaves, 1 + the highest child's level otherwise)
and lays the batch out as arrays (`TreeBatch`):

  tokens   [M]     int32  token id per node slot, -1 = no input (and padding)
  children [M, A]  int32  slots of the node's children, -1 = none
  levels   [M]     int32  0 for leaves, -1 for padding slots
  slots    [B, N]  int32  slot of node j of tree b, -1 past the tree's end
  num_nodes[B]     int32
  roots    [B]     int32  slot of each tree's root
  schedule [S, W]  int32  the slots computed at step s, padded with M (a
                          scratch slot). One step per level (step s = every
                          node of level s + 1 in the batch), or with
                          pack=True, `pack_schedule`'s steps of at most W
                          nodes, which waste far fewer slots when the levels
                          differ in size.

Sizes are bucketed (`bucket`: M, N, S and W rounded up to 2^k or 1.5 * 2^k),
so a stream of batches has only a few distinct shapes. Everything here runs
on the host, in numpy; `models.recursive` evaluates a `TreeBatch`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import numpy as np


class MalformedTreeError(ValueError):
  """A tree that is not a tree (or not one the composition accepts)."""


class Tree(NamedTuple):
  """One tree. tokens[j]: node j's input id (-1: none); children[j]: its
  children's indices, in order."""
  tokens: Sequence[int]
  children: Sequence[Sequence[int]]


def bucket(n: int, minimum: int = 1) -> int:
  """The smallest size >= max(n, minimum) of the form 2^k or 3 * 2^(k-1)."""
  n = max(int(n), int(minimum), 1)
  if n <= 2:
    return n
  power = 1 << (n - 1).bit_length()        # 2^k >= n
  three_halves = 3 * power // 4            # 1.5 * 2^(k-1)
  return three_halves if three_halves >= n else power


def check_tree(children: Sequence[Sequence[int]], *, index: int = 0,
               arity: int | None = None, max_children: int | None = None,
               composition: str = "") -> tuple[int, np.ndarray]:
  """Validates one tree given as child lists -> (root, levels [n] int32).

  Raises MalformedTreeError, naming tree `index` and the node, for: no
  nodes, a child index out of range, a node listed as a child twice (two
  parents), a cycle, more or fewer than one root, and (arity set) an
  internal node without exactly `arity` children, or (max_children set) a
  node with more children than that.
  """
  where = f"tree {index}"
  n = len(children)
  if n == 0:
    raise MalformedTreeError(f"{where}: has no nodes")
  parent = np.full(n, -1, np.int64)
  for j, kids in enumerate(children):
    kids = list(kids)
    if arity is not None and len(kids) not in (0, arity):
      raise MalformedTreeError(
          f"{where}: node {j} has {len(kids)} children, but the "
          f"{composition or 'binary'} composition needs exactly {arity} "
          f"(or 0 for a leaf)")
    if max_children is not None and len(kids) > max_children:
      raise MalformedTreeError(
          f"{where}: node {j} has {len(kids)} children, more than the "
          f"{max_children} child slots (max_children)")
    for c in kids:
      if not isinstance(c, (int, np.integer)) or not 0 <= c < n:
        raise MalformedTreeError(
            f"{where}: node {j} has child index {c!r}, out of range [0, {n}) "
            f"for a tree of {n} nodes")
      if c == j:
        raise MalformedTreeError(f"{where}: node {j} is its own child (a cycle "
                                 f"{j} -> {j})")
      if parent[c] >= 0:
        raise MalformedTreeError(
            f"{where}: node {c} is a child of both node {parent[c]} and node "
            f"{j}; in a tree every node has at most one parent")
      parent[c] = j
  # Cycles: follow parent pointers; a walk that meets itself is a cycle.
  state = np.zeros(n, np.int8)  # 0 unseen, 1 on the current walk, 2 reaches a root
  for start in range(n):
    path, j = [], start
    while j >= 0 and state[j] == 0:
      state[j] = 1
      path.append(j)
      j = parent[j]
    if j >= 0 and state[j] == 1:
      cycle = path[path.index(j):]
      shown = " -> ".join(str(k) for k in reversed(cycle + [j]))
      raise MalformedTreeError(f"{where}: node {j} is its own descendant "
                               f"(cycle {shown})")
    state[path] = 2
  roots = np.flatnonzero(parent < 0)
  if len(roots) != 1:
    raise MalformedTreeError(
        f"{where}: {len(roots)} roots (nodes {roots[:5].tolist()} are no "
        f"node's child); a tree has exactly one root")
  # Levels in reverse breadth-first order from the root.
  order, k = [int(roots[0])], 0
  while k < len(order):
    order.extend(children[order[k]])
    k += 1
  levels = np.zeros(n, np.int32)
  for j in reversed(order):
    if len(children[j]):
      levels[j] = 1 + max(levels[c] for c in children[j])
  return int(roots[0]), levels


class PreparedTree(NamedTuple):
  """One checked tree as arrays: tokens [n], children [n, A] (-1: none),
  levels [n], root (index)."""
  tokens: np.ndarray
  children: np.ndarray
  levels: np.ndarray
  root: int


def prepare_tree(tree: Tree, *, index: int = 0, arity: int | None = None,
                 max_children: int | None = None,
                 composition: str = "") -> PreparedTree:
  """Checks one tree (`check_tree`) and turns it into arrays. Preparing each
  tree once and batching with `batch_prepared` saves re-checking it in every
  epoch."""
  if len(tree.tokens) != len(tree.children):
    raise MalformedTreeError(
        f"tree {index}: {len(tree.tokens)} tokens but {len(tree.children)} "
        f"child lists; every node needs one of each")
  root, levels = check_tree(tree.children, index=index, arity=arity,
                            max_children=max_children, composition=composition)
  n = len(tree.children)
  width = arity or max(1, max(len(c) for c in tree.children))
  children = np.full((n, width), -1, np.int32)
  for j, kids in enumerate(tree.children):
    children[j, :len(kids)] = kids
  return PreparedTree(np.asarray(tree.tokens, np.int32).reshape(n), children,
                      levels, root)


class TreeBatch(NamedTuple):
  """A batch of trees as arrays; all nodes of the batch share one flat axis
  of M slots (tree b's nodes are consecutive). See the module docstring."""
  tokens: Any      # [M] int32, -1: no input (internal node, padding)
  children: Any    # [M, A] int32 slots of the children, -1: none
  levels: Any      # [M] int32, 0: leaf, -1: padding
  slots: Any       # [B, N] int32 slot of node j of tree b, -1 past its end
  num_nodes: Any   # [B] int32
  roots: Any       # [B] int32 slot of each root
  schedule: Any    # [S, W] int32 slots computed at each step, M: padding


def batch_trees(trees: Sequence[Tree], *, arity: int | None = None,
                max_children: int | None = None, composition: str = "",
                **layout) -> TreeBatch:
  """Checks trees and lays them out as a `TreeBatch` of numpy arrays.

  Args:
    trees: B trees.
    arity: if set, every internal node must have exactly `arity` children
      (binary compositions: 2); A = arity.
    max_children: at most this many children per node (compositions of any
      arity; A defaults to the most children in the batch).
    composition: its name, for error messages.
    **layout: see `batch_prepared`.
  """
  if not trees:
    raise ValueError("trees: expected at least one tree")
  return batch_prepared(
      [prepare_tree(t, index=i, arity=arity, max_children=max_children,
                    composition=composition) for i, t in enumerate(trees)],
      child_slots=arity or max_children, **layout)


def batch_prepared(prepared: Sequence[PreparedTree], *,
                   child_slots: int | None = None, num_slots: int | None = None,
                   max_nodes: int | None = None, num_steps: int | None = None,
                   width: int | None = None, pack: bool = False) -> TreeBatch:
  """Prepared trees -> TreeBatch. Sizes default to the batch's needs,
  bucketed (`bucket`); a given size below the need is an error.

  Args:
    child_slots: A (default: the most children of any node).
    num_slots: M, node slots of the batch (default: bucketed node total).
    max_nodes: N, the width of `slots`.
    num_steps, width: S and W of the schedule.
    pack: schedule with `pack_schedule` (steps of at most `width` nodes,
      levels spread over steps) instead of one step per level.
  """
  if not prepared:
    raise ValueError("prepared: expected at least one tree")
  sizes = np.asarray([len(p.tokens) for p in prepared], np.int32)
  total = int(sizes.sum())
  a = max(p.children.shape[1] for p in prepared)
  a = _given_or(child_slots, a, "child_slots", a)
  m = _given_or(num_slots, bucket(total, 8), "num_slots", total)
  n = _given_or(max_nodes, bucket(int(sizes.max()), 4), "max_nodes", int(sizes.max()))
  offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
  tokens = np.full(m, -1, np.int32)
  children = np.full((m, a), -1, np.int32)
  levels = np.full(m, -1, np.int32)
  tokens[:total] = np.concatenate([p.tokens for p in prepared])
  levels[:total] = np.concatenate([p.levels for p in prepared])
  for p, off in zip(prepared, offsets):
    kids = p.children
    children[off:off + len(kids), :kids.shape[1]] = np.where(kids >= 0, kids + off, -1)
  column = np.arange(n, dtype=np.int32)[None, :]
  slots = np.where(column < sizes[:, None], offsets[:, None] + column, -1)
  if pack:
    steps = pack_schedule(children, levels, None if width is None else width)
  else:
    steps = _level_schedule(levels)
  most = max((len(s) for s in steps), default=0)
  s = _given_or(num_steps, bucket(max(len(steps), 1)), "num_steps", len(steps))
  w = _given_or(width, bucket(max(most, 1)), "width", most)
  schedule = np.full((s, w), m, np.int32)
  for step, ids in enumerate(steps):
    schedule[step, :len(ids)] = ids
  return TreeBatch(tokens=tokens, children=children, levels=levels,
                   slots=slots.astype(np.int32), num_nodes=sizes,
                   roots=offsets + np.asarray([p.root for p in prepared], np.int32),
                   schedule=schedule)


def _level_schedule(levels: np.ndarray) -> list[np.ndarray]:
  """Step s = the slots of every node of level s + 1."""
  internal = np.flatnonzero(levels > 0)
  if not len(internal):
    return []
  internal = internal[np.argsort(levels[internal], kind="stable")]
  counts = np.bincount(levels[internal], minlength=int(levels.max()) + 1)[1:]
  return np.split(internal, np.cumsum(counts)[:-1])


def pack_schedule(children: np.ndarray, levels: np.ndarray,
                  width: int | None = None) -> list[np.ndarray]:
  """Steps of at most `width` nodes each, every node after all its children.

  List scheduling: at each step the ready nodes (children all computed)
  that lie farthest from their root go first. A level's nodes may be spread
  over several steps and nodes of different levels share a step, so a batch
  whose levels are very unequal in size wastes far fewer slots than with
  one step per level. width defaults to the mean number of internal nodes
  per level, bucketed (rounded up): the narrowest width that usually keeps
  the number of steps equal to the number of levels, so packing saves
  wasted slots without adding steps (measurements: docs/results/recursive.md).

  children [M, A] slots, levels [M] -> a list of arrays of slots.
  """
  internal = np.flatnonzero(levels > 0)
  if not len(internal):
    return []
  top = int(levels.max())
  if width is None:
    width = bucket(math.ceil(len(internal) / top))
  m = len(levels)
  parent = np.full(m, -1, np.int64)
  rows, cols = np.nonzero(children >= 0)
  parent[children[rows, cols]] = rows
  depth = np.zeros(m, np.int64)      # distance to the root
  for node in internal[np.argsort(-levels[internal], kind="stable")]:
    kids = children[node][children[node] >= 0]
    depth[kids] = depth[node] + 1
  pending = np.sum(children >= 0, 1)
  pending[levels <= 0] = -1           # leaves and padding: never scheduled
  leaves = np.flatnonzero(levels == 0)
  up = parent[leaves]
  np.subtract.at(pending, up[up >= 0], 1)
  steps = []
  ready = np.flatnonzero(pending == 0)
  pending[ready] = -1
  while len(ready):
    order = np.argsort(-depth[ready], kind="stable")
    chosen, waiting = ready[order[:width]], ready[order[width:]]
    steps.append(np.sort(chosen))
    up = parent[chosen]
    up = up[up >= 0]
    np.subtract.at(pending, up, 1)
    fresh = np.unique(up[pending[up] == 0])
    pending[fresh] = -1
    ready = np.concatenate([waiting, fresh])
  return steps


def _given_or(given: int | None, default: int, name: str, needed: int) -> int:
  if given is None:
    return default
  if given < needed:
    raise ValueError(f"{name}: the batch needs at least {needed}, got {given}")
  return int(given)


def batch_dict(trees: TreeBatch) -> dict[str, np.ndarray]:
  """A TreeBatch as a training-loop batch: 'inputs' = slots [B, N] and
  'lengths' = num_nodes [B] (what `input_pipeline.check_batch` expects),
  plus 'tokens', 'children', 'levels', 'roots', 'schedule'."""
  return {"inputs": trees.slots, "lengths": trees.num_nodes,
          "tokens": trees.tokens, "children": trees.children,
          "levels": trees.levels, "roots": trees.roots,
          "schedule": trees.schedule}


def tree_batch_from_dict(batch) -> TreeBatch:
  """The inverse of `batch_dict` (extra keys are ignored)."""
  return TreeBatch(tokens=batch["tokens"], children=batch["children"],
                   levels=batch["levels"], slots=batch["inputs"],
                   num_nodes=batch["lengths"], roots=batch["roots"],
                   schedule=batch["schedule"])
