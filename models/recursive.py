"""Recursive (tree-structured) networks over batches of trees, one loop over levels.

Dimension legend (as in `models.trees` and `models.compositions`):
  B = trees in a batch, M = node slots of the whole batch, N = nodes of the
  largest tree, A = child slots per node, S = scheduling steps, W = node
  slots per step, I = input features, H = hidden units, G = gate columns of
  a composition.

The trees come as a `models.trees.TreeBatch` (all nodes of the batch on one
flat axis of M slots, plus a schedule [S, W] of the slots each step
computes); the node function is a `models.compositions.Composition`.

`evaluate` computes every leaf at once, then runs ONE loop over the rows of
the schedule (`lax.fori_loop` with a traced trip count, so the all-padding
rows that bucketing S adds cost nothing): each step gathers the children's
states of every node of that step across the whole batch, composes them,
and scatters the results into a [M + 1, H] node-state buffer. There is no
Python recursion under jit, and as the batch's shapes are bucketed, a stream
of batches compiles only a few programs. The gradient is a custom VJP: a
second loop over the steps in reverse that reads the children's states from
the final buffer instead of storing anything per step. Measurements of this
design against one-tree-at-a-time evaluation are in
docs/results/recursive.md.

`evaluate_recursively` is the plain Python recursion over one tree that the
batched evaluation is tested against. `TreeEncoder` and `TreeClassifier`
are the Flax modules over a TreeBatch.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from models.compositions import Composition
from models.compositions import composition_from_settings
from models.compositions import NodeState
from models.compositions import Params
from models.trees import check_tree
from models.trees import Tree
from models.trees import TreeBatch


# ----------------------------------------------------------------------------
# Batched evaluation: one loop over the schedule's steps.

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
  states = _levels(composition.combine, params, gx, leaves, slots,
                   jnp.asarray(trees.schedule))
  return NodeState(states.h[:m], states.c[:m])


def _used_steps(schedule, m):
  """The number of leading schedule rows that hold a real slot (trailing
  all-padding rows, from bucketing S, are skipped by the loops)."""
  real = jnp.any(schedule < m, axis=1)                                  # [S]
  return jnp.max(jnp.where(real, jnp.arange(1, schedule.shape[0] + 1), 0))


class _Step(NamedTuple):
  """What one schedule step reads: ids [W] (the slots it computes; M =
  padding), kids [W, A] (their children's slots; M = none), mask [W, A]
  (kids < M) and children (the children's NodeState [W, A, H])."""
  ids: jax.Array
  kids: jax.Array
  mask: jax.Array
  children: NodeState


def _step(states: NodeState, slots, schedule, s) -> _Step:
  """Step s of the schedule read from the node states [M + 1, H]; slots
  [M + 1, A] holds each slot's children (M: none)."""
  m = states.h.shape[0] - 1
  ids = schedule[s]
  kids = slots[ids]
  return _Step(ids, kids, kids < m, NodeState(states.h[kids], states.c[kids]))


def _loop_levels(combine, params, gx, leaves: NodeState, slots,
                 schedule) -> NodeState:
  m = gx.shape[0] - 1

  def level(s, states: NodeState) -> NodeState:
    step = _step(states, slots, schedule, s)
    new = combine(params, gx[step.ids], step.children, step.mask)
    return NodeState(states.h.at[step.ids].set(new.h),
                     states.c.at[step.ids].set(new.c))

  return jax.lax.fori_loop(0, _used_steps(schedule, m), level, leaves)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _levels(combine: Callable[..., NodeState], params: Params, gx: jax.Array,
            leaves: NodeState, slots: jax.Array, schedule: jax.Array) -> NodeState:
  """The level loop: node states [M+1, H] with every scheduled slot
  recomputed from its children (gx [M+1, G], leaf states in; all states
  out)."""
  return _loop_levels(combine, params, gx, leaves, slots, schedule)


def _levels_fwd(combine, params, gx, leaves, slots, schedule):
  states = _loop_levels(combine, params, gx, leaves, slots, schedule)
  return states, (params, gx, states, slots, schedule)


class _Backward(NamedTuple):
  """The reverse loop's carry: d_states (NodeState [M+1, H], cotangents of
  the nodes not yet propagated), d_params (like params) and d_gx_steps
  [S, W, G] (each step's gx cotangents, scattered into [M+1, G] at the end)."""
  d_states: NodeState
  d_params: Any
  d_gx_steps: jax.Array


def _levels_bwd(combine, residuals, d_states: NodeState):
  """Reverse loop over the used steps: each step's node cotangents go back
  through `combine` to its children (read from the final buffer, which holds
  the values they had when used) and to params and gx."""
  params, gx, states, slots, schedule = residuals
  m = gx.shape[0] - 1
  steps = _used_steps(schedule, m)

  def back(i, carry: _Backward) -> _Backward:
    s = steps - 1 - i
    step = _step(states, slots, schedule, s)
    real = (step.ids < m)[:, None]
    _, vjp = jax.vjp(lambda p, g, ch: combine(p, g, ch, step.mask), params,
                     gx[step.ids], step.children)
    dh, dc = carry.d_states
    d_new = NodeState(jnp.where(real, dh[step.ids], 0.0),
                      jnp.where(real, dc[step.ids], 0.0))
    dp, dg, dch = vjp(d_new)
    keep = step.mask[..., None]
    dh = dh.at[step.ids].set(0.0).at[step.kids].add(jnp.where(keep, dch.h, 0.0))
    dc = dc.at[step.ids].set(0.0).at[step.kids].add(jnp.where(keep, dch.c, 0.0))
    return _Backward(
        NodeState(dh, dc),
        jax.tree_util.tree_map(jnp.add, carry.d_params, dp),
        jax.lax.dynamic_update_index_in_dim(
            carry.d_gx_steps, jnp.where(real, dg, 0.0), s, 0))

  # The params' gradients sum over the steps in float32 at least (bfloat16
  # params), cast back at the end.
  start = _Backward(d_states, jax.tree_util.tree_map(
      lambda p: jnp.zeros_like(p, jnp.promote_types(p.dtype, jnp.float32)),
      params), jnp.zeros(schedule.shape + gx.shape[-1:], gx.dtype))
  out = jax.lax.fori_loop(0, steps, back, start)
  dgs = out.d_gx_steps
  dgx = jnp.zeros_like(gx).at[schedule.reshape(-1)].add(
      dgs.reshape(-1, dgs.shape[-1]))
  # Rows of scheduled slots were overwritten: their leaf values get no gradient
  # (their cotangents were consumed above and zeroed).
  d_params = jax.tree_util.tree_map(lambda d, p: d.astype(p.dtype),
                                    out.d_params, params)
  return (d_params, dgx, out.d_states, None, None)


_levels.defvjp(_levels_fwd, _levels_bwd)


# ----------------------------------------------------------------------------
# Reading the node states.

def node_states(states: NodeState, trees: TreeBatch) -> NodeState:
  """NodeState [M, H] -> [B, N, H] per tree and node (zeros past each end)."""
  slots = jnp.asarray(trees.slots)
  pick = lambda x: jnp.where((slots >= 0)[..., None], x[jnp.maximum(slots, 0)], 0.0)
  return NodeState(pick(states.h), pick(states.c))


def root_states(states: NodeState, trees: TreeBatch) -> NodeState:
  """NodeState [M, H] -> NodeState [B, H] of each tree's root."""
  roots = jnp.asarray(trees.roots)
  return NodeState(states.h[roots], states.c[roots])


# ----------------------------------------------------------------------------
# The reference: one tree at a time.

def evaluate_recursively(composition: Composition, params: Params,
                         inputs: jax.Array, tree: Tree) -> NodeState:
  """The reference: plain Python recursion over ONE tree. inputs [n, I] ->
  NodeState [n, H]. Slow; for tests."""
  n = len(tree.children)
  a = composition.arity or max(1, max(len(c) for c in tree.children))
  hidden = composition.hidden_size(params)
  root, _ = check_tree(tree.children, arity=composition.arity)
  out: dict[int, NodeState] = {}

  def visit(j):
    for c in tree.children[j]:
      visit(c)
    kids = list(tree.children[j])
    padding = [jnp.zeros(hidden)] * (a - len(kids))
    hs = [out[c].h for c in kids] + padding
    cs = [out[c].c for c in kids] + padding
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
  """A TreeBatch (token ids per node slot) -> NodeState [M, H] of every
  node slot.

  Attributes:
    composition: 'rnn', 'tree_lstm' or 'child_sum'.
    hidden_size: H.
    vocab_size, embed_size: the token embedding (nodes with token -1 get a
      zero input).
    arity: for 'rnn' and 'tree_lstm'.
    forget_bias: for 'tree_lstm' and 'child_sum'.
  """
  composition: str
  hidden_size: int
  vocab_size: int
  embed_size: int
  arity: int = 2
  forget_bias: float = 1.0

  def make_composition(self) -> Composition:
    return composition_from_settings(self.composition, arity=self.arity,
                                     forget_bias=self.forget_bias)

  @nn.compact
  def __call__(self, trees: TreeBatch) -> NodeState:
    comp = self.make_composition()
    tokens = jnp.asarray(trees.tokens)                                 # [M]
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
    h = root_states(states, trees).h                                   # [B, H]
    for k in range(self.mlp_layers):
      h = nn.relu(nn.Dense(self.mlp_size, name=f"mlp_{k}")(h))
    return nn.Dense(self.num_outputs, name="head")(h)
