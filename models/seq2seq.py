"""Encoder-decoder networks (Sutskever et al. 2014, Cho et al. 2014), attention
(Bahdanau et al. 2015; Luong et al. 2015) and jitted greedy and beam decoding.

B = batch, S = source steps, T = target steps, E = embedding size,
H = hidden units per layer (and direction), M = memory width (H, or 2H with a
bidirectional encoder), A = attention units, V = target vocabulary,
K = beam size, L = maximum decoded length.

Token ids: 0 = PAD, 1 = BOS, 2 = EOS (every vocabulary of this project puts
them there). The model never predicts PAD or BOS: their logits are pinned to
a large negative constant, in training and decoding alike, so the
distribution is over real tokens and EOS.

  source ids [B, S] --embed--> (reversed within length if reverse_source)
    --> encoder: `models.layers.RNN` (stacked, optionally bidirectional;
        `models.unroll` does the scanning) --> memory [B, S, M], finals
    --> bridge: the decoder's initial state per layer
          'copy'  encoder final state of the same layer (Sutskever et al.;
                  unidirectional, equal depth)
          'dense' tanh(W [final fwd; final bwd] + b) per layer and state
                  field (Cho et al.'s h0 = tanh(V c); any encoder)
          'zeros' no bridge (only sensible with attention)
  decoder, one step (stacked cells' `step`, params under params['decoder']):
    attention 'none'      s_t = RNN(s_{t-1}, emb(y_{t-1}));         o_t = s_t
    attention 'bahdanau'  c_t = attend(s_{t-1}) (additive score v.tanh(W s + U h));
                          s_t = RNN(s_{t-1}, [emb(y_{t-1}); c_t]);
                          o_t = tanh(W_c [s_t; c_t] + b_c)
                          (Bahdanau's deep maxout readout simplified to one
                          tanh layer)
    attention 'dot' / 'general' (Luong): s_t = RNN(s_{t-1}, [emb(y_{t-1}); o_{t-1}
                          if input_feeding]); c_t = attend(s_t) with score
                          s.h ('dot', needs M == H) or s.W h ('general');
                          o_t = tanh(W_c [s_t; c_t] + b_c)
    logits_t = dropout(o_t) W_out + b_out
  Attention scores of padded source steps are set to a large negative
  constant before the softmax, so their weight is exactly 0.

Teacher forcing (`Seq2seq.__call__`): decoder inputs are BOS followed by the
target shifted right; the input projection of the target embeddings is one
matmul for all steps. When the recurrence does not depend on attention
('none', or Luong without input feeding) the decoder runs through
`models.unroll.stacked` and attention is one batched einsum; otherwise the
decoder steps the cells inside one `lax.scan` over T. Both paths compute the
same numbers (tested).

Decoding (`greedy_decode`, `beam_search`) runs the same step inside a
`lax.while_loop` over at most L steps and stops early once every sequence
(every beam) has emitted EOS. Beam search keeps K hypotheses per sentence
(the batch is flattened to B*K rows); a finished hypothesis stays in its
beam with its score frozen and competes with the live ones by length-
normalised score, log p / length**alpha (length counts EOS; alpha = 0 is the
raw sum). At every step all live hypotheses have the same length, so with
K = 1 beam search picks greedy's token each step: beam size 1 is greedy
decoding for any alpha. The n-best list comes out sorted by normalised score.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import cells as cells_lib
from models import layers
from models import unroll
from models.checks import check_one_of

PAD, BOS, EOS = 0, 1, 2
NUM_SPECIAL = 3
ATTENTIONS = ("none", "bahdanau", "dot", "general")
BRIDGES = ("copy", "dense", "zeros")
NEG = -1e9  # "minus infinity" that stays finite (no inf - inf = nan)

_embed_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)


class Encoded(NamedTuple):
  """What decoding needs from the source.

  memory [B, S, M]; mask [B, S] bool (True on real steps); keys: the memory
  pre-projected for attention ([B, S, A] additive, [B, S, H] general,
  the memory itself for dot, None without attention); states: the decoder's
  initial state, one per layer.
  """
  memory: jax.Array
  mask: jax.Array
  keys: Any
  states: tuple


class Seq2seq(nn.Module):
  """Encoder-decoder with optional attention; see the module docstring.

  Attributes:
    src_vocab_size, tgt_vocab_size: including the 3 special ids.
    embed_size: E, for source and target embeddings.
    hidden_size: H of every encoder and decoder layer.
    num_layers: layers of the encoder and of the decoder.
    cell: 'lstm', 'gru' or 'rnn'.
    bidirectional: bidirectional encoder (memory width 2H).
    attention: one of ATTENTIONS.
    input_feeding: feed o_{t-1} into the decoder (Luong's; dot/general only).
    bridge: one of BRIDGES, or '' for 'copy' (unidirectional) / 'dense'.
    reverse_source: read each source backwards (Sutskever et al.'s trick).
    dropout_rate: on embeddings, between encoder layers and before W_out.
    cell_options: passed to the cell factory (hashable, e.g. a FrozenDict).
  """
  src_vocab_size: int
  tgt_vocab_size: int
  embed_size: int = 64
  hidden_size: int = 128
  num_layers: int = 1
  cell: str = "lstm"
  bidirectional: bool = False
  attention: str = "none"
  input_feeding: bool = False
  bridge: str = ""
  reverse_source: bool = False
  dropout_rate: float = 0.0
  cell_options: Mapping[str, Any] | None = None

  # --------------------------------------------------------------------------
  # Static facts derived from the attributes.

  def _cell(self) -> cells_lib.Cell:
    return cells_lib.get_cell(self.cell, **dict(self.cell_options or {}))

  @property
  def memory_size(self) -> int:
    return self.hidden_size * (2 if self.bidirectional else 1)

  @property
  def bridge_kind(self) -> str:
    return self.bridge or ("dense" if self.bidirectional else "copy")

  @property
  def feed_size(self) -> int:
    """Width of the extra layer-0 decoder input next to the embedding."""
    if self.attention == "bahdanau":
      return self.memory_size
    return self.hidden_size if self.input_feeding else 0

  @property
  def recurrence_uses_attention(self) -> bool:
    return self.feed_size > 0

  def check(self) -> None:
    """ValueError naming the attribute, expected values and what was given."""
    check_one_of("attention", self.attention, ATTENTIONS)
    if self.bridge_kind not in BRIDGES:   # message shows what was given, not the resolved kind
      check_one_of("bridge", self.bridge, BRIDGES, " (or '' for the default)")
    if self.bridge_kind == "copy" and self.bidirectional:
      raise ValueError("bridge: 'copy' needs a unidirectional encoder; use "
                       "'dense' (the default for bidirectional) or 'zeros'")
    if self.input_feeding and self.attention not in ("dot", "general"):
      raise ValueError(f"input_feeding: only for Luong attention ('dot', "
                       f"'general'), got attention={self.attention!r}")
    if self.attention == "dot" and self.memory_size != self.hidden_size:
      raise ValueError(f"attention: 'dot' needs memory width {self.memory_size} "
                       f"== hidden_size {self.hidden_size}; use 'general' with "
                       f"a bidirectional encoder")
    for name in ("src_vocab_size", "tgt_vocab_size"):
      if getattr(self, name) <= NUM_SPECIAL:
        raise ValueError(f"{name}: expected more than {NUM_SPECIAL} ids (PAD, "
                         f"BOS, EOS come first), got {getattr(self, name)}")
    for name in ("embed_size", "hidden_size", "num_layers"):
      if getattr(self, name) <= 0:
        raise ValueError(f"{name}: expected a positive integer, got "
                         f"{getattr(self, name)}")
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ValueError(f"dropout_rate: expected a value in [0, 1), got "
                       f"{self.dropout_rate}")

  # --------------------------------------------------------------------------
  # Params.

  def setup(self):
    self.check()
    self.src_embed = nn.Embed(self.src_vocab_size, self.embed_size,
                              name="src_embed")
    self.encoder = layers.RNN(
        cell=self.cell, hidden_size=self.hidden_size,
        num_layers=self.num_layers, bidirectional=self.bidirectional,
        dropout_rate=self.dropout_rate, cell_options=self.cell_options,
        name="encoder")
    self.decoder = self.param("decoder", self._init_decoder)
    self.dropout = nn.Dropout(self.dropout_rate)
    if self.bridge_kind == "dense":
      self.bridge_params = self.param("bridge", self._init_bridge)

  def _init_decoder(self, key) -> dict[str, Any]:
    cell = self._cell()
    keys = iter(jax.random.split(key, self.num_layers + 8))
    hidden, memory, vocab = self.hidden_size, self.memory_size, self.tgt_vocab_size
    lecun = jax.nn.initializers.lecun_normal()
    params = {"embed": _embed_init(next(keys), (vocab, self.embed_size))}
    for depth in range(self.num_layers):
      size_in = self.embed_size + self.feed_size if depth == 0 else hidden
      params[f"layer_{depth}"] = cell.init(next(keys), size_in, hidden)
    attention = {}
    if self.attention == "bahdanau":
      attention = {"w_query": lecun(next(keys), (hidden, hidden)),
                   "w_key": lecun(next(keys), (memory, hidden)),
                   "b": jnp.zeros((hidden,)),
                   "v": lecun(next(keys), (hidden, 1))[:, 0]}
    elif self.attention == "general":
      attention = {"w_key": lecun(next(keys), (memory, hidden))}
    if attention:
      params["attention"] = attention
    if self.attention != "none":
      params["combine"] = {"w": lecun(next(keys), (hidden + memory, hidden)),
                           "b": jnp.zeros((hidden,))}
    params["out"] = {"w": lecun(next(keys), (hidden, vocab)),
                     "b": jnp.zeros((vocab,))}
    return params

  def _init_bridge(self, key) -> list[dict[str, Any]]:
    """One {field: {'w', 'b'}} per decoder layer, fields of the cell state."""
    cell = self._cell()
    fields = cell.initial_state(1, self.hidden_size)._fields
    lecun = jax.nn.initializers.lecun_normal()
    keys = iter(jax.random.split(key, self.num_layers * len(fields)))
    return [{field: {"w": lecun(next(keys), (self.memory_size, self.hidden_size)),
                     "b": jnp.zeros((self.hidden_size,))} for field in fields}
            for _ in range(self.num_layers)]

  # --------------------------------------------------------------------------
  # Encoder.

  def encode(self, inputs: jax.Array, lengths: jax.Array, *,
             deterministic: bool = True) -> Encoded:
    """inputs [B, S] int ids, lengths [B] (>= 1) -> `Encoded`."""
    if inputs.ndim != 2 or not jnp.issubdtype(inputs.dtype, jnp.integer):
      raise ValueError(f"inputs: expected [batch, time] integer ids, got shape "
                       f"{tuple(inputs.shape)} and dtype {inputs.dtype}")
    batch, steps = inputs.shape
    if lengths is None:
      lengths = jnp.full((batch,), steps, jnp.int32)
    if self.reverse_source:
      inputs = unroll.reverse_within_length(inputs.T, lengths).T
    xs = self.src_embed(inputs)                                  # [B, S, E]
    xs = self.dropout(xs, deterministic=deterministic)
    memory, finals = self.encoder(xs, lengths, deterministic=deterministic)
    mask = jnp.arange(steps)[None, :] < lengths[:, None]         # [B, S]
    states = self._bridge(finals, batch, memory.dtype)
    return Encoded(memory, mask, attention_keys(self, self.decoder, memory),
                   states)

  def _bridge(self, finals, batch: int, dtype) -> tuple:
    cell = self._cell()
    kind = self.bridge_kind
    if kind == "zeros":
      return tuple(cell.initial_state(batch, self.hidden_size, dtype)
                   for _ in range(self.num_layers))
    if kind == "copy":
      return tuple(finals)
    states = []
    for depth, final in enumerate(finals):
      parts = final if self.bidirectional else (final,)
      fields = {}
      for field in parts[0]._fields:
        x = jnp.concatenate([getattr(p, field) for p in parts], axis=-1)
        p = self.bridge_params[depth][field]
        fields[field] = jnp.tanh(x @ p["w"] + p["b"][None, :])
      states.append(type(parts[0])(**fields))
    return tuple(states)

  # --------------------------------------------------------------------------
  # Teacher forcing.

  def __call__(self, inputs, lengths, decoder_inputs, *,
               deterministic: bool = True) -> jax.Array:
    """-> logits [B, T, V] for decoder_inputs [B, T] (BOS + shifted target)."""
    return self.teacher_forced(inputs, lengths, decoder_inputs,
                               deterministic=deterministic)[0]

  def teacher_forced(self, inputs, lengths, decoder_inputs, *,
                     deterministic: bool = True):
    """-> (logits [B, T, V], attention weights [B, T, S] (zeros without))."""
    encoded = self.encode(inputs, lengths, deterministic=deterministic)
    dec = self.decoder
    cell = self._cell()
    emb = dec["embed"][decoder_inputs]                           # [B, T, E]
    emb = self.dropout(emb, deterministic=deterministic)
    if not self.recurrence_uses_attention:
      layers_ = [dec[f"layer_{k}"] for k in range(self.num_layers)]
      hs, _ = unroll.stacked(cell, layers_, emb, initial_states=encoded.states)
      outputs, weights = _attend_and_combine(self, dec, hs, encoded)
    else:
      gx = embed_gates(self, dec, emb)                           # [B, T, G*H]
      carry = initial_carry(self, encoded)

      def body(carry, gx_t):
        carry, (o_t, w_t) = decoder_step(self, dec, carry, gx_t, encoded)
        return carry, (o_t, w_t)
      _, (outputs, weights) = jax.lax.scan(body, carry, jnp.swapaxes(gx, 0, 1))
      outputs = jnp.swapaxes(outputs, 0, 1)                      # [B, T, H]
      weights = jnp.swapaxes(weights, 0, 1)                      # [B, T, S]
    outputs = self.dropout(outputs, deterministic=deterministic)
    return output_logits(dec, outputs), weights


# ----------------------------------------------------------------------------
# Pure decoder pieces, shared by teacher forcing and decoding.

def attention_keys(model: Seq2seq, dec, memory):
  """The memory projected once for attention (None without attention)."""
  if model.attention == "bahdanau":
    return jnp.einsum("bsm,ma->bsa", memory, dec["attention"]["w_key"])
  if model.attention == "general":
    return jnp.einsum("bsm,mh->bsh", memory, dec["attention"]["w_key"])
  if model.attention == "dot":
    return memory
  return None


def attend(model: Seq2seq, dec, query: jax.Array, encoded: Encoded):
  """query [B, H] or [B, T, H] -> (context [.., M], weights [.., S]).

  Padded source steps get weight exactly 0; the weights sum to 1.
  """
  single = query.ndim == 2
  if single:
    query = query[:, None, :]
  if model.attention == "bahdanau":
    p = dec["attention"]
    q = jnp.einsum("bth,ha->bta", query, p["w_query"])
    hidden = jnp.tanh(q[:, :, None, :] + encoded.keys[:, None, :, :]
                      + p["b"][None, None, None, :])             # [B, T, S, A]
    scores = jnp.einsum("btsa,a->bts", hidden, p["v"])
  else:
    scores = jnp.einsum("bth,bsh->bts", query, encoded.keys)
  mask = encoded.mask[:, None, :]
  scores = jnp.where(mask, scores, NEG)
  weights = jax.nn.softmax(scores, axis=-1)
  weights = jnp.where(mask, weights, 0.0)
  context = jnp.einsum("bts,bsm->btm", weights, encoded.memory)
  if single:
    return context[:, 0], weights[:, 0]
  return context, weights


def _combine(dec, hidden, context):
  p = dec["combine"]
  x = jnp.concatenate([hidden, context], axis=-1)
  bias = p["b"].reshape((1,) * (x.ndim - 1) + p["b"].shape)
  return jnp.tanh(x @ p["w"] + bias)


def _attend_and_combine(model, dec, hs, encoded):
  """Decoder outputs hs [B, T, H] -> (o [B, T, H], weights [B, T, S])."""
  if model.attention == "none":
    batch, steps = hs.shape[:2]
    return hs, jnp.zeros((batch, steps, encoded.memory.shape[1]), hs.dtype)
  context, weights = attend(model, dec, hs, encoded)
  return _combine(dec, hs, context), weights


def embed_gates(model: Seq2seq, dec, emb: jax.Array) -> jax.Array:
  """Target embeddings [..., E] -> their part of layer 0's gates [..., G*H]
  (with the bias), one matmul for all steps."""
  layer = dec["layer_0"]
  cell = model._cell()  # pylint: disable=protected-access
  return cell.project({**layer, "w_ih": layer["w_ih"][:model.embed_size]}, emb)


def initial_carry(model: Seq2seq, encoded: Encoded):
  """(states per layer, o_{t-1} [B, H] for input feeding or None)."""
  feed = None
  if model.input_feeding:
    batch = encoded.memory.shape[0]
    feed = jnp.zeros((batch, model.hidden_size), encoded.memory.dtype)
  return (encoded.states, feed)


def decoder_step(model: Seq2seq, dec, carry, gx_t: jax.Array, encoded: Encoded):
  """One decoder step. gx_t [B, G*H] from `embed_gates` of y_{t-1}.

  Returns (carry, (o_t [B, H], attention weights [B, S])).
  """
  cell = model._cell()  # pylint: disable=protected-access
  states, feed = carry
  w_extra = dec["layer_0"]["w_ih"][model.embed_size:]
  weights = None
  if model.attention == "bahdanau":
    context, weights = attend(model, dec, states[-1].h, encoded)
    gx_t = gx_t + context @ w_extra
  elif model.input_feeding:
    gx_t = gx_t + feed @ w_extra
  new_states, h = [], None
  for depth in range(model.num_layers):
    params = dec[f"layer_{depth}"]
    gx = gx_t if depth == 0 else cell.project(params, h)
    state, h = cell.step(params, states[depth], gx)
    new_states.append(state)
  if model.attention == "bahdanau":
    o = _combine(dec, h, context)
  elif model.attention == "none":
    o = h
    weights = jnp.zeros(encoded.mask.shape, h.dtype)
  else:
    context, weights = attend(model, dec, h, encoded)
    o = _combine(dec, h, context)
  return (tuple(new_states), o if model.input_feeding else None), (o, weights)


def output_logits(dec, outputs: jax.Array) -> jax.Array:
  """o [..., H] -> logits [..., V]; PAD and BOS pinned to NEG."""
  p = dec["out"]
  vocab = p["w"].shape[-1]
  logits = outputs @ p["w"] + p["b"].reshape((1,) * (outputs.ndim - 1) + (vocab,))
  never = jnp.arange(vocab) < NUM_SPECIAL - 1                  # PAD, BOS
  return jnp.where(never.reshape((1,) * (outputs.ndim - 1) + (vocab,)),
                   NEG, logits)


# ----------------------------------------------------------------------------
# Decoding.

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


def _check_decode_args(inputs, lengths, max_len):
  if inputs.ndim != 2:
    raise ValueError(f"inputs: expected [batch, time] ids, got shape "
                     f"{tuple(inputs.shape)}")
  if lengths is None or tuple(lengths.shape) != inputs.shape[:1]:
    raise ValueError(f"lengths: expected shape {inputs.shape[:1]}, got "
                     f"{None if lengths is None else tuple(lengths.shape)}")
  if max_len < 1:
    raise ValueError(f"max_len: expected a positive integer, got {max_len}")


@functools.partial(jax.jit, static_argnames=("model", "max_len",
                                             "return_attention"))
def greedy_decode(model: Seq2seq, params, inputs, lengths, *, max_len: int,
                  return_attention: bool = False):
  """Most likely token at each step, until EOS or max_len.

  inputs [B, S], lengths [B] -> `Hypotheses` without the K axis, plus the
  attention weights [B, L, S] if return_attention.
  """
  _check_decode_args(inputs, lengths, max_len)
  encoded = model.apply({"params": params}, inputs, lengths,
                        method=Seq2seq.encode)
  dec = params["decoder"]
  batch, src_len = inputs.shape
  dtype = encoded.memory.dtype

  def cond(loop):
    return (loop[0] < max_len) & ~jnp.all(loop[4])

  def body(loop):
    t, carry, last, tokens, finished, lengths_, log_probs, attn = loop
    gx = embed_gates(model, dec, dec["embed"][last])
    carry, (o, weights) = decoder_step(model, dec, carry, gx, encoded)
    logp = jax.nn.log_softmax(output_logits(dec, o), axis=-1)    # [B, V]
    token = jnp.argmax(logp, axis=-1).astype(jnp.int32)
    token_logp = jnp.take_along_axis(logp, token[:, None], axis=-1)[:, 0]
    token = jnp.where(finished, PAD, token)
    log_probs = log_probs + jnp.where(finished, 0.0, token_logp)
    lengths_ = lengths_ + (~finished).astype(jnp.int32)
    tokens = tokens.at[:, t].set(token)
    if return_attention:
      attn = attn.at[:, t].set(jnp.where(finished[:, None], 0.0, weights))
    finished = finished | (token == EOS)
    return (t + 1, carry, token, tokens, finished, lengths_, log_probs, attn)

  attn_steps = max_len if return_attention else 0
  loop = (jnp.asarray(0), initial_carry(model, encoded),
          jnp.full((batch,), BOS, jnp.int32),
          jnp.zeros((batch, max_len), jnp.int32),
          jnp.zeros((batch,), bool), jnp.zeros((batch,), jnp.int32),
          jnp.zeros((batch,), dtype),
          jnp.zeros((batch, attn_steps, src_len), dtype))
  _, _, _, tokens, finished, lengths_, log_probs, attn = jax.lax.while_loop(
      cond, body, loop)
  hyps = Hypotheses(tokens, lengths_, log_probs, log_probs, finished)
  return (hyps, attn) if return_attention else hyps


def _gather_beams(tree, parent, batch: int, beam: int):
  """Leaves [B*K, ...] -> rows picked by parent [B, K] (flattened again)."""
  def gather(x):
    shaped = x.reshape((batch, beam) + x.shape[1:])
    index = parent.reshape((batch, beam) + (1,) * (x.ndim - 1))
    return jnp.take_along_axis(shaped, index, axis=1).reshape(x.shape)
  return jax.tree_util.tree_map(gather, tree)


@functools.partial(jax.jit, static_argnames=("model", "beam_size", "max_len"))
def beam_search(model: Seq2seq, params, inputs, lengths, *, beam_size: int,
                max_len: int, alpha: float = 1.0) -> Hypotheses:
  """K-best decoding; see the module docstring.

  inputs [B, S], lengths [B] -> `Hypotheses` with a K axis, sorted by score
  (log p / length**alpha), best first.
  """
  _check_decode_args(inputs, lengths, max_len)
  vocab = model.tgt_vocab_size
  if not 1 <= beam_size <= vocab - NUM_SPECIAL:
    raise ValueError(f"beam_size: expected an integer in [1, "
                     f"{vocab - NUM_SPECIAL}] (the predictable tokens), got "
                     f"{beam_size}")
  batch, beam = inputs.shape[0], beam_size
  encoded = model.apply({"params": params}, inputs, lengths,
                        method=Seq2seq.encode)
  tiled = jax.tree_util.tree_map(lambda x: jnp.repeat(x, beam, axis=0), encoded)
  dec = params["decoder"]
  dtype = encoded.memory.dtype
  # A finished hypothesis has one continuation: PAD, at no cost.
  frozen_row = jnp.full((vocab,), NEG, dtype).at[PAD].set(0.0)

  def cond(loop):
    return (loop[0] < max_len) & ~jnp.all(loop[4])

  def body(loop):
    t, carry, last, tokens, finished, lengths_, log_probs = loop
    gx = embed_gates(model, dec, dec["embed"][last])
    carry, (o, _) = decoder_step(model, dec, carry, gx, tiled)
    logp = jax.nn.log_softmax(output_logits(dec, o), axis=-1)
    logp = logp.reshape(batch, beam, vocab)
    candidates = jnp.where(finished[:, :, None],
                           log_probs[:, :, None] + frozen_row[None, None, :],
                           log_probs[:, :, None] + logp)          # [B, K, V]
    new_len = jnp.where(finished, lengths_, t + 1)               # [B, K]
    norm = new_len.astype(dtype) ** alpha
    ranked = (candidates / norm[:, :, None]).reshape(batch, beam * vocab)
    _, index = jax.lax.top_k(ranked, beam)                       # [B, K]
    parent, token = index // vocab, (index % vocab).astype(jnp.int32)
    log_probs = jnp.take_along_axis(candidates.reshape(batch, beam * vocab),
                                    index, axis=1)
    was_finished = jnp.take_along_axis(finished, parent, axis=1)
    lengths_ = jnp.take_along_axis(new_len, parent, axis=1)
    tokens = jnp.take_along_axis(tokens, parent[:, :, None], axis=1)
    token = jnp.where(was_finished, PAD, token)
    tokens = tokens.at[:, :, t].set(token)
    finished = was_finished | (token == EOS)
    carry = _gather_beams(carry, parent, batch, beam)
    return (t + 1, carry, token.reshape(-1), tokens, finished, lengths_,
            log_probs)

  # Only beam 0 is live at first, so the K first picks differ.
  start = jnp.full((batch, beam), NEG, dtype).at[:, 0].set(0.0)
  loop = (jnp.asarray(0), initial_carry(model, tiled),
          jnp.full((batch * beam,), BOS, jnp.int32),
          jnp.zeros((batch, beam, max_len), jnp.int32),
          jnp.zeros((batch, beam), bool), jnp.zeros((batch, beam), jnp.int32),
          start)
  _, _, _, tokens, finished, lengths_, log_probs = jax.lax.while_loop(
      cond, body, loop)
  scores = log_probs / jnp.maximum(lengths_, 1).astype(dtype) ** alpha
  order = jnp.argsort(-scores, axis=1)                            # stable
  pick = lambda x: jnp.take_along_axis(  # noqa: E731
      x, order.reshape(order.shape + (1,) * (x.ndim - 2)), axis=1)
  return Hypotheses(pick(tokens), pick(lengths_), pick(log_probs),
                    pick(scores), pick(finished))


def sequence_log_probs(model: Seq2seq, params, inputs, lengths, outputs,
                       output_lengths) -> jax.Array:
  """Teacher-forced log p(outputs | inputs), summed over the first
  output_lengths tokens. outputs [B, T] (EOS included) -> [B]."""
  decoder_inputs = jnp.concatenate(
      [jnp.full((outputs.shape[0], 1), BOS, outputs.dtype), outputs[:, :-1]],
      axis=1)
  logits = model.apply({"params": params}, inputs, lengths, decoder_inputs)
  logp = jax.nn.log_softmax(logits, axis=-1)
  token_logp = jnp.take_along_axis(logp, outputs[:, :, None], axis=-1)[..., 0]
  mask = jnp.arange(outputs.shape[1])[None, :] < output_lengths[:, None]
  return jnp.sum(jnp.where(mask, token_logp, 0.0), axis=1)
