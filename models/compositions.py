"""Node functions of recursive networks, as pure functions over a params dict.

Dimension legend: W = nodes composed at once, A = child slots per node,
I = input features, H = hidden units, G = gate columns of a composition.

Compositions (like `models.cells`, each a `Composition` of pure functions):
  'rnn'        Socher et al.: p = tanh(W [c_1; ...; c_A] + U x + b); a leaf
               is tanh(U x + b) (x = 0 where a node has no token).
  'tree_lstm'  N-ary Tree-LSTM (Tai et al. 2015, eqs. 9-14): gates see every
               child's h through its own matrix; one forget gate per child.
  'child_sum'  Child-Sum Tree-LSTM (Tai et al. 2015, eqs. 2-8): gates see the
               sum of the children's h; one forget gate per child, f_k from
               h_k. Any number of children (up to A).
'rnn' and 'tree_lstm' have a fixed arity (2 by default): every internal node
must have exactly that many children.
"""

from __future__ import annotations

import inspect
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

Params = dict[str, jax.Array]


class NodeState(NamedTuple):
  """h: [..., H]; c: [..., H] (memory cells; zeros for 'rnn')."""
  h: jax.Array
  c: jax.Array


class Composition(NamedTuple):
  """A node function as pure functions (cf. `models.cells.Cell`).

  name: 'rnn', 'tree_lstm' or 'child_sum' (for messages).
  arity: exact children of an internal node (None: any number).
  init(key, input_size, hidden_size, arity, dtype) -> params
  project(params, x [..., I]) -> gx [..., G]: the input part of every gate,
      for all nodes at once (one matmul hoisted out of the level loop).
  combine(params, gx [W, G], child NodeState [W, A, H], mask [W, A]) ->
      NodeState [W, H]; masked-out children count as absent. With children
      None it computes leaves (no children), skipping the child matmuls.
  hidden_size(params) -> H, read from the params' shapes.
  """
  name: str
  arity: int | None
  init: Callable[..., Params]
  project: Callable[[Params, jax.Array], jax.Array]
  combine: Callable[..., NodeState]
  hidden_size: Callable[[Params], int]


def _dense_init(key, fan_in: int, shape, dtype):
  return jax.random.normal(key, shape, dtype) * (1.0 / math.sqrt(max(fan_in, 1)))


def _project(params, x):
  """x [..., I] -> W_x x + b [..., G]."""
  flat = x.reshape(-1, x.shape[-1])
  return (flat @ params["w_x"] + params["b"][None, :]).reshape(
      *x.shape[:-1], params["w_x"].shape[-1])


def _masked(children: NodeState, mask) -> NodeState:
  """Zeros the states of absent children (mask [W, A] False)."""
  m = mask[..., None]
  return NodeState(jnp.where(m, children.h, 0.0), jnp.where(m, children.c, 0.0))


def _lstm_state(i, o, u, forgotten=None) -> NodeState:
  """Gate pre-activations i, o, u [W, H] and the children's forget-gated
  cells summed [W, H] (None for a leaf) -> NodeState [W, H]:
  c = sigmoid(i) tanh(u) + forgotten, h = sigmoid(o) tanh(c)."""
  c = jax.nn.sigmoid(i) * jnp.tanh(u)
  if forgotten is not None:
    c = c + forgotten
  return NodeState(jax.nn.sigmoid(o) * jnp.tanh(c), c)


def _iou(z, hidden: int):
  """z [W, >= 3 H] -> its first three gate blocks i, o, u [W, H]."""
  return jnp.split(z[:, :3 * hidden], 3, axis=-1)


def _stacked_child_init(arity: int, gates_per_hidden: Callable[[int], int],
                        forget_bias: float | None):
  """The init of a composition whose children's h are stacked into one
  [A H] vector: w_x [I, G], w_c [A H, G], b [G] with G =
  gates_per_hidden(A) * H; forget_bias (if set) on the columns from 3 H on."""

  def init(key, input_size, hidden_size, arity_=arity, dtype=jnp.float32):
    k_x, k_c = jax.random.split(key)
    gates = gates_per_hidden(arity_) * hidden_size
    b = jnp.zeros((gates,), dtype)
    if forget_bias is not None:
      b = b.at[3 * hidden_size:].set(forget_bias)
    return {"w_x": _dense_init(k_x, input_size, (input_size, gates), dtype),
            "w_c": _dense_init(k_c, arity_ * hidden_size,
                               (arity_ * hidden_size, gates), dtype),
            "b": b}

  return init


def recursive_net(arity: int = 2) -> Composition:
  """Socher et al.: p = tanh(W [c_1; ...; c_A] + U x + b)."""

  def hidden_size(params):
    return params["w_c"].shape[0] // arity

  def combine(params, gx, children, mask):
    if children is None:
      h = jnp.tanh(gx)
      return NodeState(h, jnp.zeros_like(h))
    kids = _masked(children, mask)
    w = gx.shape[0]
    h = jnp.tanh(gx + kids.h.reshape(w, -1) @ params["w_c"])
    return NodeState(h, jnp.zeros_like(h))

  init = _stacked_child_init(arity, lambda a: 1, forget_bias=None)
  return Composition("rnn", arity, init, _project, combine, hidden_size)


def nary_tree_lstm(arity: int = 2, forget_bias: float = 1.0) -> Composition:
  """N-ary Tree-LSTM (Tai et al. 2015, eqs. 9-14), gate order i, o, u, f_1..f_A.

    [i, o, u, f_1 .. f_A] = W x + sum_l U_l h_l + b
    c = sigmoid(i) * tanh(u) + sum_l sigmoid(f_l) * c_l
    h = sigmoid(o) * tanh(c)
  """

  def hidden_size(params):
    return params["w_c"].shape[0] // arity

  def combine(params, gx, children, mask):
    hidden = hidden_size(params)
    if children is None:
      return _lstm_state(*_iou(gx, hidden))
    kids = _masked(children, mask)
    w, a, _ = kids.h.shape
    z = gx + kids.h.reshape(w, a * hidden) @ params["w_c"]
    f = z[:, 3 * hidden:].reshape(w, a, hidden)
    return _lstm_state(*_iou(z, hidden), jnp.sum(jax.nn.sigmoid(f) * kids.c, 1))

  init = _stacked_child_init(arity, lambda a: 3 + a, forget_bias)
  return Composition("tree_lstm", arity, init, _project, combine, hidden_size)


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

  def hidden_size(params):
    return params["w_f"].shape[0]

  def combine(params, gx, children, mask):
    hidden = hidden_size(params)
    if children is None:
      return _lstm_state(*_iou(gx, hidden))
    kids = _masked(children, mask)
    z = gx[:, :3 * hidden] + jnp.sum(kids.h, 1) @ params["w_c"]
    f = gx[:, None, 3 * hidden:] + kids.h @ params["w_f"]    # [W, A, H]
    f = jnp.where(mask[..., None], jax.nn.sigmoid(f), 0.0)
    return _lstm_state(*_iou(z, hidden), jnp.sum(f * kids.c, 1))

  return Composition("child_sum", None, init, _project, combine, hidden_size)


_COMPOSITIONS = {"rnn": recursive_net, "tree_lstm": nary_tree_lstm,
                 "child_sum": child_sum_tree_lstm}


def _factory(name: str) -> Callable[..., Composition]:
  if name not in _COMPOSITIONS:
    raise ValueError(f"composition: unknown composition {name!r}; known are "
                     f"{sorted(_COMPOSITIONS)}")
  return _COMPOSITIONS[name]


def get_composition(name: str, **options) -> Composition:
  """'rnn' (arity=2), 'tree_lstm' (arity=2, forget_bias=1.0) or 'child_sum'
  (forget_bias=1.0). An option the composition does not take is an error."""
  factory = _factory(name)
  try:
    return factory(**options)
  except TypeError as e:
    raise ValueError(f"composition {name!r}: bad options {options}: {e}") from None


def composition_from_settings(name: str, **settings) -> Composition:
  """Like `get_composition`, but passes only the settings the composition
  takes (a model's shared settings: 'child_sum' ignores arity, 'rnn'
  ignores forget_bias)."""
  taken = inspect.signature(_factory(name)).parameters
  return get_composition(name, **{k: v for k, v in settings.items() if k in taken})
