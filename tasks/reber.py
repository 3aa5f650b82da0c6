"""The embedded Reber grammar (Hochreiter & Schmidhuber 1997, Exp. 1).

Symbols B, T, P, S, X, V, E. An embedded string is
  B, c, <a Reber string B ... E>, c, E    with c in {T, P} chosen at random,
where the inner Reber string walks the classic 6-state graph with each branch
taken with probability 1/2. At every step the net sees the current symbol
(one-hot) and must predict the *set* of symbols that may come next; the
symbol after the inner E repeats c, which is the long time lag.

A string is predicted correctly when, at every step, the k most active
outputs are exactly the k possible next symbols (the paper's criterion).
"Solved": every validation string predicted correctly. Paper, Table 1: LSTM
(3 blocks of size 2, lr 0.5) solves 100% of trials after about 8,440
training strings. Strings longer than `max_len` symbols are redrawn
(documented truncation of the geometric tail; it changes almost nothing
for max_len >= 30).
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import optax

import input_pipeline
from models import tagger
from tasks import base

SYMBOLS = "BTPSXVE"
_INDEX = {s: i for i, s in enumerate(SYMBOLS)}
# state -> the two (symbol, next state) branches; state 5 emits E and ends.
_GRAPH = {0: (("T", 1), ("P", 2)), 1: (("S", 1), ("X", 3)),
          2: (("T", 2), ("V", 4)), 3: (("X", 2), ("S", 5)),
          4: (("P", 3), ("V", 5))}
_END = 5


def _options(state: int) -> set[str]:
  return {"E"} if state == _END else {s for s, _ in _GRAPH[state]}


def embedded_string(rng: np.random.Generator) -> tuple[str, list[set[str]]]:
  """-> (string, the set of possible next symbols after each of its symbols)."""
  outer = "TP"[rng.integers(2)]
  symbols, nexts = ["B", outer, "B"], [{"T", "P"}, {"B"}, _options(0)]
  state = 0
  while state != _END:
    symbol, state = _GRAPH[state][rng.integers(2)]
    symbols.append(symbol)
    nexts.append(_options(state))
  symbols += ["E", outer, "E"]
  nexts += [{outer}, {"E"}, set()]
  return "".join(symbols), nexts


def make_batch(rng: np.random.Generator, batch_size: int, *, max_len: int):
  """-> {'inputs': [B, L, 7], 'lengths': [B], 'targets': [B, L, 7] multi-hot}.

  L = max_len - 1: the last symbol (E) is never an input.
  """
  steps = max_len - 1
  inputs = np.zeros((batch_size, steps, len(SYMBOLS)), np.float32)
  targets = np.zeros_like(inputs)
  lengths = np.zeros(batch_size, np.int32)
  for b in range(batch_size):
    string, nexts = embedded_string(rng)
    while len(string) > max_len:
      string, nexts = embedded_string(rng)
    for t, symbol in enumerate(string[:-1]):
      inputs[b, t, _INDEX[symbol]] = 1.0
      targets[b, t, [_INDEX[s] for s in nexts[t]]] = 1.0
    lengths[b] = len(string) - 1
  return {"inputs": inputs, "lengths": lengths, "targets": targets}


def _step_correct(logits, targets):
  """[B, L] True where the top-k outputs are exactly the k allowed symbols."""
  k = jnp.sum(targets, -1, keepdims=True)                       # [B, L, 1]
  rank = jnp.argsort(jnp.argsort(-logits, axis=-1), axis=-1)    # 0 = top
  predicted = rank < k
  return jnp.all(predicted == (targets > 0), axis=-1)


def loss(logits, batch):
  mask = base.step_mask(batch["lengths"], logits.shape[1])      # [B, L]
  per_step = jnp.sum(optax.sigmoid_binary_cross_entropy(
      logits, batch["targets"]), -1)
  ok = _step_correct(logits, batch["targets"]) | ~mask
  sums = {"nll": jnp.sum(per_step * mask), "steps": jnp.sum(mask),
          "wrong_strings": jnp.sum(~jnp.all(ok, -1)),
          "count": jnp.asarray(logits.shape[0], jnp.float32)}
  return base.masked_mean(per_step, mask), sums


def summarize(totals):
  return {"loss": base.ratio(totals, "nll", "steps"),
          "string_error_rate": base.ratio(totals, "wrong_strings", "count"),
          "wrong_strings": int(totals["wrong_strings"])}


def build(config) -> base.Task:
  maker = functools.partial(make_batch, max_len=config.max_len)
  train_batches, eval_splits = input_pipeline.generated_data(maker, config)
  return base.Task(
      model=tagger.SequenceTagger(base.encoder(config), num_outputs=len(SYMBOLS)),
      loss=loss, summarize=summarize,
      solved=lambda metrics: metrics["wrong_strings"] == 0,
      train_batches=train_batches, eval_splits=eval_splits)
