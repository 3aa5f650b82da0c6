"""Recursive (tree-structured) networks over batches of trees, one loop over levels.

Dimension legend:
  B = trees in a batch, M = node slots of the whole batch (all trees' nodes
  on one flat axis, tree after tree, then padding; bucketed), N = nodes of
  the largest tree (bucketed), A = child slots per node, S = scheduling
  steps, W = node slots per step (both bucketed), I = input features,
  H = hidden units, G = gate columns of a composition.

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

`evaluate` computes every leaf at once, then runs ONE loop over the rows of
`schedule` (`lax.fori_loop` with a traced trip count, so the all-padding
rows that bucketing S adds cost nothing): each step gathers the children's
states of every node of that step across the whole batch, composes them,
and scatters the results into a [M + 1, H] node-state buffer. There is no
Python recursion under jit, and shapes are bucketed (M, N, S and W rounded
up to 2^k or 1.5 * 2^k), so a stream of batches compiles only a few
programs.

Compositions (pure functions over a dict of params, like `models.cells`):
  'rnn'        Socher et al.: p = tanh(W [c_1; ...; c_A] + U x + b); a leaf
               is tanh(U x + b) (x = 0 where a node has no token).
  'tree_lstm'  N-ary Tree-LSTM (Tai et al. 2015, eqs. 9-14): gates see every
               child's h through its own matrix; one forget gate per child.
  'child_sum'  Child-Sum Tree-LSTM (Tai et al. 2015, eqs. 2-8): gates see the
               sum of the children's h; one forget gate per child, f_k from
               h_k. Any number of children (up to A).
'rnn' and 'tree_lstm' have a fixed arity (2 by default): every internal node
must have exactly that many children.

`evaluate_recursively` is the plain Python recursion over one tree that the
batched evaluation is tested against.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Params = dict[str, jax.Array]


class MalformedTreeError(ValueError):
  """A tree that is not a tree (or not one the composition accepts)."""


# ----------------------------------------------------------------------------
# Trees on the host: checking, levels, bucketing, batching.

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
  per level, bucketed (rounded up): on ListOps batches of 16-256 trees this
  keeps the number of steps equal to the number of levels with 72-100% of
  the slots used (1.5 x the mean used 53-67% for the same steps).

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


# ----------------------------------------------------------------------------
# Compositions.

class NodeState(NamedTuple):
  """h: [..., H]; c: [..., H] (memory cells; zeros for 'rnn')."""
  h: jax.Array
  c: jax.Array


class Composition(NamedTuple):
  """A node function as pure functions (cf. `models.cells.Cell`).

  init(key, input_size, hidden_size, arity, dtype) -> params
  project(params, x [..., I]) -> gx [..., G]: the input part of every gate,
      for all nodes at once (one matmul hoisted out of the level scan).
  combine(params, gx [W, G], child NodeState [W, A, H], mask [W, A]) ->
      NodeState [W, H]; masked-out children count as absent. With children
      None it computes leaves (no children), skipping the child matmuls.
  arity: exact children of an internal node (None: any number).
  """
  name: str
  arity: int | None
  init: Callable[..., Params]
  project: Callable[[Params, jax.Array], jax.Array]
  combine: Callable[..., NodeState]


def _dense_init(key, fan_in: int, shape, dtype):
  return jax.random.normal(key, shape, dtype) * (1.0 / math.sqrt(max(fan_in, 1)))


def _project(params, x):
  flat = x.reshape(-1, x.shape[-1])
  return (flat @ params["w_x"] + params["b"][None, :]).reshape(
      *x.shape[:-1], params["w_x"].shape[-1])


def _masked(children: NodeState, mask) -> NodeState:
  m = mask[..., None]
  return NodeState(jnp.where(m, children.h, 0.0), jnp.where(m, children.c, 0.0))


def recursive_net(arity: int = 2) -> Composition:
  """Socher et al.: p = tanh(W [c_1; ...; c_A] + U x + b)."""

  def init(key, input_size, hidden_size, arity_=arity, dtype=jnp.float32):
    k_x, k_c = jax.random.split(key)
    return {"w_x": _dense_init(k_x, input_size, (input_size, hidden_size), dtype),
            "w_c": _dense_init(k_c, arity_ * hidden_size,
                               (arity_ * hidden_size, hidden_size), dtype),
            "b": jnp.zeros((hidden_size,), dtype)}

  def combine(params, gx, children, mask):
    if children is None:
      h = jnp.tanh(gx)
      return NodeState(h, jnp.zeros_like(h))
    kids = _masked(children, mask)
    w = gx.shape[0]
    h = jnp.tanh(gx + kids.h.reshape(w, -1) @ params["w_c"])
    return NodeState(h, jnp.zeros_like(h))

  return Composition("rnn", arity, init, _project, combine)


def nary_tree_lstm(arity: int = 2, forget_bias: float = 1.0) -> Composition:
  """N-ary Tree-LSTM (Tai et al. 2015, eqs. 9-14), gate order i, o, u, f_1..f_A.

    [i, o, u, f_1 .. f_A] = W x + sum_l U_l h_l + b
    c = sigmoid(i) * tanh(u) + sum_l sigmoid(f_l) * c_l
    h = sigmoid(o) * tanh(c)
  """

  def init(key, input_size, hidden_size, arity_=arity, dtype=jnp.float32):
    k_x, k_c = jax.random.split(key)
    gates = (3 + arity_) * hidden_size
    b = jnp.zeros((gates,), dtype).at[3 * hidden_size:].set(forget_bias)
    return {"w_x": _dense_init(k_x, input_size, (input_size, gates), dtype),
            "w_c": _dense_init(k_c, arity_ * hidden_size,
                               (arity_ * hidden_size, gates), dtype),
            "b": b}

  def combine(params, gx, children, mask):
    hidden = params["w_c"].shape[0] // arity
    if children is None:
      i, o, u = gx[:, :hidden], gx[:, hidden:2 * hidden], gx[:, 2 * hidden:3 * hidden]
      c = jax.nn.sigmoid(i) * jnp.tanh(u)
      return NodeState(jax.nn.sigmoid(o) * jnp.tanh(c), c)
    kids = _masked(children, mask)
    w, a, _ = kids.h.shape
    z = gx + kids.h.reshape(w, a * hidden) @ params["w_c"]
    i, o, u = z[:, :hidden], z[:, hidden:2 * hidden], z[:, 2 * hidden:3 * hidden]
    f = z[:, 3 * hidden:].reshape(w, a, hidden)
    c = jax.nn.sigmoid(i) * jnp.tanh(u) + jnp.sum(jax.nn.sigmoid(f) * kids.c, 1)
    return NodeState(jax.nn.sigmoid(o) * jnp.tanh(c), c)

  return Composition("tree_lstm", arity, init, _project, combine)


def child_sum_tree_lstm(forget_bias: float = 1.0) -> Composition:
  """Child-Sum Tree-LSTM (Tai et al. 2015, eqs. 2-8), gate order i, o, u, f.

    h~ = sum_k h_k;  [i, o, u] = W x + U h~ + b;  f_k = W_f x + U_f h_k + b_f
    c = sigmoid(i) * tanh(u) + sum_k sigmoid(f_k) * c_k;  h = sigmoid(o) * tanh(c)
  """

  def init(key, input_size, hidden_size, arity_=None, dtype=jnp.float32):
    del arity_
    k_x, k_c, k_f = jax.random.split(key, 3)
    gates = 4 * hidden_size
    b = jnp.zeros((gates,), dtype).at[3 * hidden_size:].set(forget_bias)
    return {"w_x": _dense_init(k_x, input_size, (input_size, gates), dtype),
            "w_c": _dense_init(k_c, hidden_size, (hidden_size, 3 * hidden_size), dtype),
            "w_f": _dense_init(k_f, hidden_size, (hidden_size, hidden_size), dtype),
            "b": b}

  def combine(params, gx, children, mask):
    hidden = params["w_f"].shape[0]
    if children is None:
      i, o, u = jnp.split(gx[:, :3 * hidden], 3, axis=-1)
      c = jax.nn.sigmoid(i) * jnp.tanh(u)
      return NodeState(jax.nn.sigmoid(o) * jnp.tanh(c), c)
    kids = _masked(children, mask)
    z = gx[:, :3 * hidden] + jnp.sum(kids.h, 1) @ params["w_c"]
    i, o, u = jnp.split(z, 3, axis=-1)
    f = gx[:, None, 3 * hidden:] + kids.h @ params["w_f"]    # [W, A, H]
    f = jnp.where(mask[..., None], jax.nn.sigmoid(f), 0.0)
    c = jax.nn.sigmoid(i) * jnp.tanh(u) + jnp.sum(f * kids.c, 1)
    return NodeState(jax.nn.sigmoid(o) * jnp.tanh(c), c)

  return Composition("child_sum", None, init, _project, combine)


_COMPOSITIONS = {"rnn": recursive_net, "tree_lstm": nary_tree_lstm,
                 "child_sum": child_sum_tree_lstm}


def get_composition(name: str, **options) -> Composition:
  """'rnn' (arity=2), 'tree_lstm' (arity=2, forget_bias=1.0) or 'child_sum'
  (forget_bias=1.0)."""
  if name not in _COMPOSITIONS:
    raise ValueError(f"composition: unknown composition {name!r}; known are "
                     f"{sorted(_COMPOSITIONS)}")
  try:
    return _COMPOSITIONS[name](**options)
  except TypeError as e:
    raise ValueError(f"composition {name!r}: bad options {options}: {e}") from None


# ----------------------------------------------------------------------------
# Batched evaluation: one scan over levels.

def evaluate(composition: Composition, params: Params, inputs: jax.Array,
             trees: TreeBatch, *, projected: bool = False) -> NodeState:
  """inputs [M, I] (zeros where a node has no token) -> NodeState [M, H] of
  every node slot (padding slots hold leaf values of zero input).

  projected=True: inputs are already `composition.project(params, x)` [M, G]
  (e.g. gathered from a projected embedding table, which is much cheaper
  than projecting every node slot).

  Leaves are computed all at once; then one loop over the rows of
  trees.schedule (trailing all-padding rows skipped) computes each step's
  nodes across the batch: gather children, combine, scatter into the
  [M + 1, H] node-state buffer (row M: scratch). The gradient is a second
  loop over the steps in reverse (`_levels`' custom VJP) that reads
  children's states from the final buffer, so nothing per step is stored
  and each step costs O(W A H), not O(M H).
  """
  m = inputs.shape[0]
  children = jnp.asarray(trees.children)
  if children.shape[0] != m:
    raise ValueError(f"inputs: expected one row per node slot ({children.shape[0]}), "
                     f"got shape {tuple(inputs.shape)}")
  gx = inputs if projected else composition.project(params, inputs)  # [M, G]
  gx = jnp.concatenate([gx, jnp.zeros_like(gx[:1])], 0)                 # [M+1, G]
  slots = jnp.where(children >= 0, children, m)
  slots = jnp.concatenate([slots, jnp.full((1, slots.shape[1]), m, slots.dtype)], 0)
  leaves = composition.combine(params, gx, None, None)                 # [M+1, H]
  h, c = _levels(composition.combine, params, gx, leaves.h, leaves.c, slots,
                 jnp.asarray(trees.schedule))
  return NodeState(h[:m], c[:m])


def _used_steps(schedule, m):
  """The number of leading schedule rows that hold a real slot (trailing
  all-padding rows, from bucketing S, are skipped by the loops)."""
  real = jnp.any(schedule < m, axis=1)                                  # [S]
  return jnp.max(jnp.where(real, jnp.arange(1, schedule.shape[0] + 1), 0))


def _loop_levels(combine, params, gx, h, c, slots, schedule):
  m = gx.shape[0] - 1

  def level(s, state):
    h, c = state
    ids = schedule[s]                                                  # [W]
    kids = slots[ids]                                                  # [W, A]
    new = combine(params, gx[ids], NodeState(h[kids], c[kids]), kids < m)
    return h.at[ids].set(new.h), c.at[ids].set(new.c)

  return jax.lax.fori_loop(0, _used_steps(schedule, m), level, (h, c))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _levels(combine, params, gx, h, c, slots, schedule):
  """The level loop: node states [M+1, H] with every scheduled slot recomputed
  from its children (leaf states h, c in; all states out)."""
  return _loop_levels(combine, params, gx, h, c, slots, schedule)


def _levels_fwd(combine, params, gx, h, c, slots, schedule):
  h, c = _loop_levels(combine, params, gx, h, c, slots, schedule)
  return (h, c), (params, gx, h, c, slots, schedule)


def _levels_bwd(combine, residuals, cotangents):
  """Reverse loop over the used steps: each step's node cotangents go back
  through `combine` to its children (read from the final buffer, which holds
  the values they had when used) and to params and gx."""
  params, gx, h, c, slots, schedule = residuals
  dh, dc = cotangents
  m = gx.shape[0] - 1
  steps = _used_steps(schedule, m)

  def back(i, carry):
    dh, dc, dparams, dgs = carry
    s = steps - 1 - i
    ids = schedule[s]
    real = (ids < m)[:, None]
    kids = slots[ids]
    mask = kids < m
    children = NodeState(h[kids], c[kids])
    _, vjp = jax.vjp(lambda p, g, ch: combine(p, g, ch, mask), params, gx[ids],
                     children)
    d_new = NodeState(jnp.where(real, dh[ids], 0.0), jnp.where(real, dc[ids], 0.0))
    dp, dg, dch = vjp(d_new)
    keep = mask[..., None]
    dh = dh.at[ids].set(0.0).at[kids].add(jnp.where(keep, dch.h, 0.0))
    dc = dc.at[ids].set(0.0).at[kids].add(jnp.where(keep, dch.c, 0.0))
    dparams = jax.tree_util.tree_map(jnp.add, dparams, dp)
    dgs = jax.lax.dynamic_update_index_in_dim(dgs, jnp.where(real, dg, 0.0), s, 0)
    return (dh, dc, dparams, dgs)

  zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
  dgs = jnp.zeros(schedule.shape + gx.shape[-1:], gx.dtype)
  dh, dc, dparams, dgs = jax.lax.fori_loop(0, steps, back, (dh, dc, zeros, dgs))
  dgx = jnp.zeros_like(gx).at[schedule.reshape(-1)].add(
      dgs.reshape(-1, dgs.shape[-1]))
  # Rows of scheduled slots were overwritten: their leaf values get no gradient
  # (their cotangents were consumed above and zeroed).
  return (dparams, dgx, dh, dc, None, None)


_levels.defvjp(_levels_fwd, _levels_bwd)


def node_states(states: NodeState, trees: TreeBatch) -> NodeState:
  """NodeState [M, H] -> [B, N, H] per tree and node (zeros past each end)."""
  slots = jnp.asarray(trees.slots)
  pick = lambda x: jnp.where((slots >= 0)[..., None], x[jnp.maximum(slots, 0)], 0.0)
  return NodeState(pick(states.h), pick(states.c))


def _hidden_size(composition: Composition, params: Params) -> int:
  if composition.name == "child_sum":
    return params["w_f"].shape[0]
  return params["w_c"].shape[0] // composition.arity


def root_states(states: NodeState, trees: TreeBatch) -> NodeState:
  """NodeState [M, H] -> NodeState [B, H] of each tree's root."""
  roots = jnp.asarray(trees.roots)
  return NodeState(states.h[roots], states.c[roots])


def evaluate_recursively(composition: Composition, params: Params,
                         inputs: jax.Array, tree: Tree) -> NodeState:
  """The reference: plain Python recursion over ONE tree. inputs [n, I] ->
  NodeState [n, H]. Slow; for tests."""
  n = len(tree.children)
  a = composition.arity or max(1, max(len(c) for c in tree.children))
  hidden = _hidden_size(composition, params)
  root, _ = check_tree(tree.children, arity=composition.arity)
  out: dict[int, NodeState] = {}

  def visit(j):
    for c in tree.children[j]:
      visit(c)
    kids = list(tree.children[j])
    hs = [out[c].h for c in kids] + [jnp.zeros(hidden)] * (a - len(kids))
    cs = [out[c].c for c in kids] + [jnp.zeros(hidden)] * (a - len(kids))
    mask = jnp.asarray([[k < len(kids) for k in range(a)]])
    gx = composition.project(params, inputs[j][None])
    if kids:
      state = composition.combine(
          params, gx, NodeState(jnp.stack(hs)[None], jnp.stack(cs)[None]), mask)
    else:
      state = composition.combine(params, gx, None, None)
    out[j] = jax.tree_util.tree_map(lambda x: x[0], state)

  visit(root)
  return NodeState(jnp.stack([out[j].h for j in range(n)]),
                   jnp.stack([out[j].c for j in range(n)]))


# ----------------------------------------------------------------------------
# Flax modules.

class TreeEncoder(nn.Module):
  """Token ids per node slot -> NodeState [M, H] of every node slot.

  Attributes:
    composition: 'rnn', 'tree_lstm' or 'child_sum'.
    hidden_size: H.
    vocab_size, embed_size: the token embedding (nodes with token -1 get a
      zero input).
    arity: for 'rnn' and 'tree_lstm'.
  """
  composition: str
  hidden_size: int
  vocab_size: int
  embed_size: int
  arity: int = 2
  forget_bias: float = 1.0

  def make_composition(self) -> Composition:
    if self.composition == "child_sum":
      return child_sum_tree_lstm(self.forget_bias)
    if self.composition == "tree_lstm":
      return nary_tree_lstm(self.arity, self.forget_bias)
    return get_composition(self.composition, arity=self.arity)

  @nn.compact
  def __call__(self, trees: TreeBatch) -> NodeState:
    comp = self.make_composition()
    tokens = jnp.asarray(trees.tokens)
    embed = nn.Embed(self.vocab_size, self.embed_size, name="embed")
    params = self.param(
        "composition", lambda key: comp.init(key, self.embed_size,
                                             self.hidden_size, comp.arity))
    # Project the [V, I] table once, then gather rows: the same as projecting
    # each node's embedding, for a fraction of the work.
    table = comp.project(params, embed.embedding)                      # [V, G]
    none = comp.project(params, jnp.zeros((1, self.embed_size), table.dtype))
    gx = jnp.where((tokens >= 0)[:, None], table[jnp.maximum(tokens, 0)], none)
    return evaluate(comp, params, gx, trees, projected=True)


class TreeClassifier(nn.Module):
  """A TreeBatch -> [B, K] logits from the root's h (through an MLP with
  `mlp_layers` ReLU layers of `mlp_size`)."""
  encoder: TreeEncoder
  num_outputs: int
  mlp_layers: int = 0
  mlp_size: int = 0

  @nn.compact
  def __call__(self, trees: TreeBatch, *, deterministic: bool = True):
    del deterministic
    states = self.encoder(trees)
    h = root_states(states, trees).h
    for k in range(self.mlp_layers):
      h = nn.relu(nn.Dense(self.mlp_size, name=f"mlp_{k}")(h))
    return nn.Dense(self.num_outputs, name="head")(h)


__all__ = ["MalformedTreeError", "Tree", "TreeBatch", "NodeState",
           "Composition", "bucket", "check_tree", "batch_trees", "evaluate",
           "evaluate_recursively", "root_states", "node_states", "batch_dict",
           "prepare_tree", "batch_prepared", "PreparedTree", "pack_schedule", "get_composition",
           "recursive_net", "nary_tree_lstm", "child_sum_tree_lstm",
           "TreeEncoder", "TreeClassifier", "tree_batch_from_dict"]
