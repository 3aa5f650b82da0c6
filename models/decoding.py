"""Greedy decoding, beam search and teacher-forced rescoring for any
autoregressive model that exposes one decoding step.

N = rows the step function sees (B for greedy, B*K for beams), B = batch,
K = beam size, V = vocabulary, L = maximum decoded length, T = target steps.

Token ids: 0 = PAD, 1 = BOS, 2 = EOS (every vocabulary of this project puts
them there). The model is given as a step function

  step(state, tokens [N] int32) -> (state, logits [N, V], aux)

state: any pytree whose leaves have N leading rows (e.g. the recurrent
carry); tokens: the previous output (BOS first); logits: unnormalised scores
of the next token; aux: a pytree of per-row arrays [N, ...] (e.g. attention
weights) that greedy decoding can record, or None. What the step reads and
never changes (an encoded source, image features) belongs in its closure:
beam search tiles it once with `tile_beams`, then gathers only the state.

Both decoders run inside one `lax.while_loop` over at most L steps and stop
early once every sequence (every beam) has emitted EOS; after EOS a row gets
PAD at no cost. Beam search keeps K hypotheses per sentence (rows b*K + k); a
finished hypothesis stays in its beam with its score frozen and competes
with the live ones by length-normalised score, log p / length**alpha
(length counts EOS; alpha = 0 is the raw sum). At every step all live
hypotheses have the same length, so with K = 1 beam search picks greedy's
token each step: beam size 1 is greedy decoding for any alpha. The n-best
list comes out sorted by normalised score.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp

PAD, BOS, EOS = 0, 1, 2
NUM_SPECIAL = 3
NEG = -1e9  # "minus infinity" that stays finite (no inf - inf = nan)

StepFn = Callable[[Any, jax.Array], tuple[Any, jax.Array, Any]]


class Hypotheses(NamedTuple):
  """Decoder output. With beams, every array has an extra K axis after B,
  hypotheses sorted best first.

  tokens [B, (K,) L] int32: output ids, EOS included, PAD after it.
  lengths [B, (K,)]: tokens up to and including EOS (L if none).
  log_probs [B, (K,)]: sum of log p of those tokens.
  scores [B, (K,)]: log_probs / lengths**alpha (greedy: = log_probs).
  finished [B, (K,)] bool: ended with EOS (else cut at L).
  """
  tokens: jax.Array
  lengths: jax.Array
  log_probs: jax.Array
  scores: jax.Array
  finished: jax.Array


@flax.struct.dataclass
class DecodeLoop:
  """The `lax.while_loop` state of `greedy` and `beam_search`. Shapes are
  greedy's; beams add K after B ([B, K, ...]) and flatten the step's rows
  to B*K.

  t: steps taken; state: the step function's; last [B]: the previous token;
  tokens [B, L]; finished, lengths, log_probs [B]; aux (greedy): the step's
  aux per step ([B, L, ...] leaves), or None when not recorded.
  """
  t: jax.Array
  state: Any
  last: jax.Array
  tokens: jax.Array
  finished: jax.Array
  lengths: jax.Array
  log_probs: jax.Array
  aux: Any = None


def _check_max_len(max_len: int) -> None:
  if max_len < 1:
    raise ValueError(f"max_len: expected a positive integer, got {max_len}")


def _step_shapes(step: StepFn, state, rows: int):
  """(logits, aux) as ShapeDtypeStructs, from tracing the step once."""
  tokens = jax.ShapeDtypeStruct((rows,), jnp.int32)
  _, logits, aux = jax.eval_shape(step, state, tokens)
  return logits, aux


def _score_dtype(logits_dtype) -> jnp.dtype:
  """Log-probabilities and scores are float32 at least: bfloat16 logits
  are upcast before the log-softmax and the sums over steps."""
  return jnp.promote_types(logits_dtype, jnp.float32)


def _not_done(loop) -> jax.Array:
  return (loop.t < loop.tokens.shape[-1]) & ~jnp.all(loop.finished)


def greedy(step: StepFn, state, batch_size: int, *, max_len: int,
           record_aux: bool = False):
  """The most likely token at each step, until EOS or max_len.

  state: the step function's initial state, B rows. Returns `Hypotheses`
  without the K axis, plus with record_aux the step's aux per step
  ([B, L, ...] leaves; zeros once a row has finished).
  """
  _check_max_len(max_len)
  logits_shape, aux_shape = _step_shapes(step, state, batch_size)
  dtype = _score_dtype(logits_shape.dtype)

  def body(loop: DecodeLoop) -> DecodeLoop:
    state, logits, aux = step(loop.state, loop.last)
    logp = jax.nn.log_softmax(logits.astype(dtype), axis=-1)      # [B, V]
    token = jnp.argmax(logp, axis=-1).astype(jnp.int32)
    token_logp = jnp.take_along_axis(logp, token[:, None], axis=-1)[:, 0]
    finished = loop.finished
    token = jnp.where(finished, PAD, token)
    recorded = loop.aux
    if record_aux:
      recorded = jax.tree_util.tree_map(
          lambda r, a: r.at[:, loop.t].set(jnp.where(
              finished.reshape((-1,) + (1,) * (a.ndim - 1)), jnp.zeros_like(a), a)),
          loop.aux, aux)
    return DecodeLoop(
        t=loop.t + 1, state=state, last=token,
        tokens=loop.tokens.at[:, loop.t].set(token),
        finished=finished | (token == EOS),
        lengths=loop.lengths + (~finished).astype(jnp.int32),
        log_probs=loop.log_probs + jnp.where(finished, 0.0, token_logp),
        aux=recorded)

  aux = None
  if record_aux:
    aux = jax.tree_util.tree_map(
        lambda a: jnp.zeros((batch_size, max_len) + a.shape[1:], a.dtype),
        aux_shape)
  loop = DecodeLoop(
      t=jnp.asarray(0), state=state,
      last=jnp.full((batch_size,), BOS, jnp.int32),
      tokens=jnp.zeros((batch_size, max_len), jnp.int32),
      finished=jnp.zeros((batch_size,), bool),
      lengths=jnp.zeros((batch_size,), jnp.int32),
      log_probs=jnp.zeros((batch_size,), dtype), aux=aux)
  loop = jax.lax.while_loop(_not_done, body, loop)
  hyps = Hypotheses(loop.tokens, loop.lengths, loop.log_probs, loop.log_probs,
                    loop.finished)
  return (hyps, loop.aux) if record_aux else hyps


def tile_beams(tree, beam_size: int):
  """Leaves [B, ...] -> [B*K, ...], each row repeated K times (rows b*K + k)."""
  return jax.tree_util.tree_map(lambda x: jnp.repeat(x, beam_size, axis=0), tree)


def _gather_beams(tree, parent, batch: int, beam: int):
  """Leaves [B*K, ...] -> rows picked by parent [B, K] (flattened again)."""
  def gather(x):
    shaped = x.reshape((batch, beam) + x.shape[1:])
    index = parent.reshape((batch, beam) + (1,) * (x.ndim - 1))
    return jnp.take_along_axis(shaped, index, axis=1).reshape(x.shape)
  return jax.tree_util.tree_map(gather, tree)


def beam_search(step: StepFn, state, batch_size: int, *, beam_size: int,
                max_len: int, alpha: float = 1.0) -> Hypotheses:
  """K-best decoding; see the module docstring.

  state: the step function's initial state with B*K rows (`tile_beams` of
  the B-row one). Returns `Hypotheses` with a K axis, sorted by score
  (log p / length**alpha), best first. beam_size must lie in [1, V - 3]
  (the predictable tokens).
  """
  _check_max_len(max_len)
  batch, beam = batch_size, beam_size
  logits_shape, _ = _step_shapes(step, state, batch * beam)
  vocab, dtype = logits_shape.shape[-1], _score_dtype(logits_shape.dtype)
  if not 1 <= beam_size <= vocab - NUM_SPECIAL:
    raise ValueError(f"beam_size: expected an integer in [1, "
                     f"{vocab - NUM_SPECIAL}] (the predictable tokens), got "
                     f"{beam_size}")
  # A finished hypothesis has one continuation: PAD, at no cost.
  frozen_row = jnp.full((vocab,), NEG, dtype).at[PAD].set(0.0)

  def body(loop: DecodeLoop) -> DecodeLoop:
    state, logits, _ = step(loop.state, loop.last)
    logp = jax.nn.log_softmax(logits.astype(dtype), axis=-1).reshape(
        batch, beam, vocab)
    finished, log_probs = loop.finished, loop.log_probs
    candidates = jnp.where(finished[:, :, None],
                           log_probs[:, :, None] + frozen_row[None, None, :],
                           log_probs[:, :, None] + logp)          # [B, K, V]
    new_len = jnp.where(finished, loop.lengths, loop.t + 1)      # [B, K]
    norm = new_len.astype(dtype) ** alpha
    ranked = (candidates / norm[:, :, None]).reshape(batch, beam * vocab)
    _, index = jax.lax.top_k(ranked, beam)                       # [B, K]
    parent, token = index // vocab, (index % vocab).astype(jnp.int32)
    was_finished = jnp.take_along_axis(finished, parent, axis=1)
    token = jnp.where(was_finished, PAD, token)
    tokens = jnp.take_along_axis(loop.tokens, parent[:, :, None], axis=1)
    return DecodeLoop(
        t=loop.t + 1, state=_gather_beams(state, parent, batch, beam),
        last=token.reshape(-1), tokens=tokens.at[:, :, loop.t].set(token),
        finished=was_finished | (token == EOS),
        lengths=jnp.take_along_axis(new_len, parent, axis=1),
        log_probs=jnp.take_along_axis(
            candidates.reshape(batch, beam * vocab), index, axis=1))

  # Only beam 0 is live at first, so the K first picks differ.
  loop = DecodeLoop(
      t=jnp.asarray(0), state=state,
      last=jnp.full((batch * beam,), BOS, jnp.int32),
      tokens=jnp.zeros((batch, beam, max_len), jnp.int32),
      finished=jnp.zeros((batch, beam), bool),
      lengths=jnp.zeros((batch, beam), jnp.int32),
      log_probs=jnp.full((batch, beam), NEG, dtype).at[:, 0].set(0.0))
  loop = jax.lax.while_loop(_not_done, body, loop)
  scores = loop.log_probs / jnp.maximum(loop.lengths, 1).astype(dtype) ** alpha
  order = jnp.argsort(-scores, axis=1)                            # stable
  pick = lambda x: jnp.take_along_axis(  # noqa: E731
      x, order.reshape(order.shape + (1,) * (x.ndim - 2)), axis=1)
  return Hypotheses(pick(loop.tokens), pick(loop.lengths), pick(loop.log_probs),
                    pick(scores), pick(loop.finished))


def teacher_forcing_inputs(outputs: jax.Array) -> jax.Array:
  """outputs [B, T] -> BOS followed by outputs shifted right, [B, T]."""
  return jnp.concatenate(
      [jnp.full((outputs.shape[0], 1), BOS, outputs.dtype), outputs[:, :-1]],
      axis=1)


def sequence_log_probs(logits: jax.Array, outputs: jax.Array,
                       output_lengths: jax.Array) -> jax.Array:
  """Teacher-forced logits [B, T, V] for outputs [B, T] (EOS included) ->
  log p(outputs) [B], summed over each row's first output_lengths tokens."""
  logp = jax.nn.log_softmax(
      logits.astype(_score_dtype(logits.dtype)), axis=-1)
  token_logp = jnp.take_along_axis(logp, outputs[:, :, None], axis=-1)[..., 0]
  mask = jnp.arange(outputs.shape[1])[None, :] < output_lengths[:, None]
  return jnp.sum(jnp.where(mask, token_logp, 0.0), axis=1)
