"""Encoder-decoder networks (Sutskever et al. 2014, Cho et al. 2014) with
attention (Bahdanau et al. 2015; Luong et al. 2015).

B = batch, S = source steps, T = target steps, E = embedding size,
H = hidden units per layer (and direction), M = memory width (H, or 2H with a
bidirectional encoder), A = attention units, V = target vocabulary,
K = beam size, L = maximum decoded length, G = gates per cell.

Token ids: 0 = PAD, 1 = BOS, 2 = EOS (`models.decoding`). The model never
predicts PAD or BOS: their logits are pinned to a large negative constant,
in training and decoding alike, so the distribution is over real tokens and
EOS.

  source ids [B, S] --embed--> (reversed within length if reverse_source)
    --> encoder: `models.layers.RNN` (stacked, optionally bidirectional;
        `models.unroll` does the scanning) --> memory [B, S, M], finals
    --> bridge: the decoder's initial state per layer
          'copy'  encoder final state of the same layer (Sutskever et al.;
                  unidirectional, equal depth)
          'dense' tanh(W [final fwd; final bwd] + b) per layer and state
                  field (Cho et al.'s h0 = tanh(V c); any encoder)
          'zeros' no bridge (only sensible with attention)
  decoder (`Decoder`, params under params['decoder']), one step:
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

Teacher forcing (`Seq2seq.__call__`, `Decoder.__call__`): decoder inputs are
BOS followed by the target shifted right; the input projection of the target
embeddings is one matmul for all steps. When the recurrence does not depend
on attention ('none', or Luong without input feeding) the decoder's `RNN`
runs whole sequences and attention is one batched einsum; otherwise the
decoder steps the cells inside one `lax.scan` over T. Both paths compute the
same numbers as `Decoder.step` run token by token (tested).

Decoding: `greedy_decode`, `beam_search` and `sequence_log_probs` bind
`Decoder.step` to the generic decoders of `models.decoding`, jitted.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from models import decoding
from models import layers
from models import unroll
from models.checks import check_one_of

PAD, BOS, EOS = decoding.PAD, decoding.BOS, decoding.EOS
NUM_SPECIAL, NEG = decoding.NUM_SPECIAL, decoding.NEG
ATTENTIONS = ("none", "bahdanau", "dot", "general")
BRIDGES = ("copy", "dense", "zeros")

_embed_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)
_lecun = jax.nn.initializers.lecun_normal()


@flax.struct.dataclass
class Encoded:
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


@flax.struct.dataclass
class DecoderCarry:
  """The decoder's recurrent state: states, one per layer; feed: o_{t-1}
  [B, H] for input feeding, else None."""
  states: tuple
  feed: jax.Array | None


def _affine(p, x: jax.Array) -> jax.Array:
  """x [..., I] @ p['w'] [I, O] + p['b'] [O] -> [..., O]."""
  bias = p["b"].reshape((1,) * (x.ndim - 1) + p["b"].shape)
  return x @ p["w"] + bias


def _affine_init(size_in: int, size_out: int):
  """LeCun-normal w [I, O], zero b [O]."""
  def init(key):
    return {"w": _lecun(key, (size_in, size_out)), "b": jnp.zeros((size_out,))}
  return init


def _combine(p, hidden: jax.Array, context: jax.Array) -> jax.Array:
  """tanh(W_c [hidden; context] + b_c): [..., H], [..., M] -> [..., H]."""
  return jnp.tanh(_affine(p, jnp.concatenate([hidden, context], axis=-1)))


def _attend(kind: str, p, query: jax.Array, encoded: Encoded):
  """query [B, H] or [B, T, H] -> (context [.., M], weights [.., S]).

  Padded source steps get weight exactly 0; the weights sum to 1.
  """
  single = query.ndim == 2
  if single:
    query = query[:, None, :]
  if kind == "bahdanau":
    q = jnp.einsum("bth,ha->bta", query, p["w_query"])
    hidden = jnp.tanh(q[:, :, None, :] + encoded.keys[:, None, :, :]
                      + p["b"][None, None, None, :])             # [B, T, S, A]
    scores = jnp.einsum("btsa,a->bts", hidden, p["v"])
  else:
    scores = jnp.einsum("bth,bsh->bts", query, encoded.keys)
  mask = encoded.mask[:, None, :]
  scores = jnp.where(mask, scores, NEG)
  # The softmax in float32 at least (bfloat16 scores), cast back.
  weights = jax.nn.softmax(
      scores.astype(jnp.promote_types(scores.dtype, jnp.float32)), axis=-1
  ).astype(scores.dtype)
  weights = jnp.where(mask, weights, 0.0)
  context = jnp.einsum("bts,bsm->btm", weights, encoded.memory)
  if single:
    return context[:, 0], weights[:, 0]
  return context, weights


class Decoder(nn.Module):
  """The target side of `Seq2seq`: embedding, stacked cells (`layers.RNN`),
  attention and the output layer; see the module docstring.

  `__call__` runs teacher forcing over whole target sequences, `step` one
  decoding step; both read the source through an `Encoded`.

  Params: 'embed' [V, E]; 'layer_{k}', the RNN's ('layer_0' reads
  [emb; feed], w_ih [E + feed_size, G*H]); 'attention' (bahdanau: w_query
  [H, H], w_key [M, H], b [H], v [H]; general: w_key [M, H]); 'combine'
  {w [H + M, H], b [H]} with attention; 'out' {w [H, V], b [V]}. The RNN
  shares this module's scope (`nn.share_scope`), so its layers sit next to
  the other params, where checkpoints and `models.convert` find them.

  Attributes:
    vocab_size: V, including the 3 special ids.
    embed_size, hidden_size, num_layers, cell, cell_options: as in `Seq2seq`.
    attention: one of ATTENTIONS.
    input_feeding: feed o_{t-1} into layer 0 (Luong's; dot/general only).
    memory_size: M.
    dropout: the model's dropout module, applied to the target embeddings
      and to o_t (shared with the source side: one stream of masks).
  """
  vocab_size: int
  embed_size: int
  hidden_size: int
  num_layers: int
  cell: str
  attention: str
  input_feeding: bool
  memory_size: int
  dropout: nn.Module
  cell_options: Mapping[str, Any] | None = None

  @property
  def feed_size(self) -> int:
    """Width of the extra layer-0 input next to the embedding."""
    if self.attention == "bahdanau":
      return self.memory_size
    return self.hidden_size if self.input_feeding else 0

  @property
  def input_size(self) -> int:
    """Width of layer 0's input: E + feed_size."""
    return self.embed_size + self.feed_size

  @property
  def recurrence_uses_attention(self) -> bool:
    return self.feed_size > 0

  def setup(self):
    hidden, memory = self.hidden_size, self.memory_size
    self.embed = self.param("embed", _embed_init,
                            (self.vocab_size, self.embed_size))
    self.rnn = layers.RNN(cell=self.cell, hidden_size=hidden,
                          num_layers=self.num_layers,
                          cell_options=self.cell_options)
    nn.share_scope(self, self.rnn)
    self.attention_params = None
    if self.attention in ("bahdanau", "general"):
      self.attention_params = self.param("attention", self._init_attention)
    self.combine_params = None
    if self.attention != "none":
      self.combine_params = self.param("combine",
                                       _affine_init(hidden + memory, hidden))
    self.out_params = self.param("out", _affine_init(hidden, self.vocab_size))

  def _init_attention(self, key) -> dict[str, jax.Array]:
    hidden, memory = self.hidden_size, self.memory_size
    if self.attention == "general":
      return {"w_key": _lecun(key, (memory, hidden))}
    k_query, k_key, k_v = jax.random.split(key, 3)
    return {"w_query": _lecun(k_query, (hidden, hidden)),
            "w_key": _lecun(k_key, (memory, hidden)),
            "b": jnp.zeros((hidden,)),
            "v": _lecun(k_v, (hidden, 1))[:, 0]}

  def attention_keys(self, memory: jax.Array):
    """memory [B, S, M] projected once for attention (None without)."""
    if self.attention in ("bahdanau", "general"):
      return jnp.einsum("bsm,mh->bsh", memory, self.attention_params["w_key"])
    if self.attention == "dot":
      return memory
    return None

  def initial_carry(self, encoded: Encoded) -> DecoderCarry:
    """The carry before the first step: the bridged states, zero o_{t-1}."""
    feed = None
    if self.input_feeding:
      batch = encoded.memory.shape[0]
      feed = jnp.zeros((batch, self.hidden_size), encoded.memory.dtype)
    return DecoderCarry(encoded.states, feed)

  def _embedding_gates(self, emb: jax.Array) -> jax.Array:
    """Target embeddings [..., E] -> their part of layer 0's gates [..., G*H]
    (with the bias), one matmul for all steps."""
    layer = self.rnn.stack_params(self.input_size).layers[0]
    return self.rnn.cell_functions().project(
        {**layer, "w_ih": layer["w_ih"][:self.embed_size]}, emb)

  def _logits(self, outputs: jax.Array) -> jax.Array:
    """o [..., H] -> logits [..., V]; PAD and BOS pinned to NEG."""
    logits = _affine(self.out_params, outputs)
    never = jnp.arange(self.vocab_size) < NUM_SPECIAL - 1        # PAD, BOS
    return jnp.where(never.reshape((1,) * (outputs.ndim - 1) + never.shape),
                     NEG, logits)

  def _gates_step(self, encoded: Encoded):
    """A pure step(carry, gx_t [B, G*H]) -> (carry, (o_t [B, H], attention
    weights [B, S])), gx_t from `_embedding_gates` of y_{t-1}; params bound,
    so it can run inside `lax` loops."""
    rnn_step = self.rnn.step_function(self.input_size)
    w_extra = self.rnn.stack_params(self.input_size).layers[0]["w_ih"][self.embed_size:]
    kind, feeding = self.attention, self.input_feeding
    attention, combine = self.attention_params, self.combine_params

    def step(carry: DecoderCarry, gx_t):
      if kind == "bahdanau":
        context, weights = _attend(kind, attention, carry.states[-1].h, encoded)
        gx_t = gx_t + context @ w_extra
      elif feeding:
        gx_t = gx_t + carry.feed @ w_extra
      states, h = rnn_step(carry.states, gx_t)
      if kind == "bahdanau":
        o = _combine(combine, h, context)
      elif kind == "none":
        o, weights = h, jnp.zeros(encoded.mask.shape, h.dtype)
      else:
        context, weights = _attend(kind, attention, h, encoded)
        o = _combine(combine, h, context)
      return DecoderCarry(states, o if feeding else None), (o, weights)
    return step

  def __call__(self, decoder_inputs: jax.Array, encoded: Encoded, *,
               deterministic: bool = True) -> tuple[jax.Array, jax.Array]:
    """Teacher forcing: decoder_inputs [B, T] (BOS + shifted target) ->
    (logits [B, T, V], attention weights [B, T, S] (zeros without))."""
    emb = self.dropout(self.embed[decoder_inputs],
                       deterministic=deterministic)              # [B, T, E]
    if not self.recurrence_uses_attention:
      hs, _ = self.rnn(emb, initial_states=encoded.states)        # [B, T, H]
      if self.attention == "none":
        outputs = hs
        weights = jnp.zeros(hs.shape[:2] + encoded.memory.shape[1:2], hs.dtype)
      else:
        context, weights = _attend(self.attention, self.attention_params, hs,
                                   encoded)
        outputs = _combine(self.combine_params, hs, context)
    else:
      step = self._gates_step(encoded)
      gx = self._embedding_gates(emb)                             # [B, T, G*H]
      _, (outputs, weights) = jax.lax.scan(
          step, self.initial_carry(encoded), jnp.swapaxes(gx, 0, 1))
      outputs = jnp.swapaxes(outputs, 0, 1)                       # [B, T, H]
      weights = jnp.swapaxes(weights, 0, 1)                       # [B, T, S]
    outputs = self.dropout(outputs, deterministic=deterministic)
    return self._logits(outputs), weights

  def step(self, carry: DecoderCarry, tokens: jax.Array, encoded: Encoded):
    """One decoding step: tokens [B] (y_{t-1}) -> (carry, logits [B, V],
    attention weights [B, S] (zeros without)). No dropout."""
    carry, (o, weights) = self._gates_step(encoded)(
        carry, self._embedding_gates(self.embed[tokens]))
    return carry, self._logits(o), weights


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

  @property
  def memory_size(self) -> int:
    return self.hidden_size * (2 if self.bidirectional else 1)

  @property
  def bridge_kind(self) -> str:
    return self.bridge or ("dense" if self.bidirectional else "copy")

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
    self.dropout = nn.Dropout(self.dropout_rate)
    self.decoder = Decoder(
        vocab_size=self.tgt_vocab_size, embed_size=self.embed_size,
        hidden_size=self.hidden_size, num_layers=self.num_layers,
        cell=self.cell, attention=self.attention,
        input_feeding=self.input_feeding, memory_size=self.memory_size,
        dropout=self.dropout, cell_options=self.cell_options)
    if self.bridge_kind == "dense":
      self.bridge_params = self.param("bridge", self._init_bridge)

  def _init_bridge(self, key) -> list[dict[str, Any]]:
    """One {field: {'w', 'b'}} per decoder layer, fields of the cell state."""
    fields = self.encoder.cell_functions().initial_state(1, self.hidden_size)._fields
    keys = iter(jax.random.split(key, self.num_layers * len(fields)))
    init = _affine_init(self.memory_size, self.hidden_size)
    return [{field: init(next(keys)) for field in fields}
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
    return Encoded(memory, mask, self.decoder.attention_keys(memory), states)

  def _bridge(self, finals, batch: int, dtype) -> tuple:
    kind = self.bridge_kind
    if kind == "zeros":
      return self.decoder.rnn.zero_states(batch, dtype)
    if kind == "copy":
      return tuple(finals)
    states = []
    for depth, final in enumerate(finals):
      parts = final if self.bidirectional else (final,)
      fields = {}
      for field in parts[0]._fields:
        x = jnp.concatenate([getattr(p, field) for p in parts], axis=-1)
        fields[field] = jnp.tanh(_affine(self.bridge_params[depth][field], x))
      states.append(type(parts[0])(**fields))
    return tuple(states)

  # --------------------------------------------------------------------------
  # Teacher forcing and one decoding step.

  def __call__(self, inputs, lengths, decoder_inputs, *,
               deterministic: bool = True) -> jax.Array:
    """-> logits [B, T, V] for decoder_inputs [B, T] (BOS + shifted target)."""
    return self.teacher_forced(inputs, lengths, decoder_inputs,
                               deterministic=deterministic)[0]

  def teacher_forced(self, inputs, lengths, decoder_inputs, *,
                     deterministic: bool = True):
    """-> (logits [B, T, V], attention weights [B, T, S] (zeros without))."""
    encoded = self.encode(inputs, lengths, deterministic=deterministic)
    return self.decoder(decoder_inputs, encoded, deterministic=deterministic)

  def initial_carry(self, encoded: Encoded) -> DecoderCarry:
    return self.decoder.initial_carry(encoded)

  def decode_step(self, carry: DecoderCarry, tokens: jax.Array,
                  encoded: Encoded):
    """`Decoder.step`: tokens [B] -> (carry, logits [B, V], weights [B, S])."""
    return self.decoder.step(carry, tokens, encoded)


# ----------------------------------------------------------------------------
# Decoding: `Decoder.step` bound to the decoders of `models.decoding`.

def _check_decode_args(inputs, lengths):
  if inputs.ndim != 2:
    raise ValueError(f"inputs: expected [batch, time] ids, got shape "
                     f"{tuple(inputs.shape)}")
  if lengths is None or tuple(lengths.shape) != inputs.shape[:1]:
    raise ValueError(f"lengths: expected shape {inputs.shape[:1]}, got "
                     f"{None if lengths is None else tuple(lengths.shape)}")


def _encode_for_decoding(model, params, inputs, lengths, rows: int = 1):
  """-> (step function, its initial state), the source repeated `rows` times
  (the beams). `model` is a `Seq2seq` or any module with its `encode`,
  `initial_carry` and `decode_step` (e.g. `models.captioner.Captioner`, whose
  inputs are images and lengths None)."""
  if isinstance(model, Seq2seq):
    _check_decode_args(inputs, lengths)
  variables = {"params": params}
  encoded = model.apply(variables, inputs, lengths, method="encode")
  if rows > 1:
    encoded = decoding.tile_beams(encoded, rows)

  def step(carry, tokens):
    return model.apply(variables, carry, tokens, encoded, method="decode_step")
  return step, model.apply(variables, encoded, method="initial_carry")


@functools.partial(jax.jit, static_argnames=("model", "max_len",
                                             "return_attention"))
def greedy_decode(model, params, inputs, lengths, *, max_len: int,
                  return_attention: bool = False):
  """Most likely token at each step, until EOS or max_len.

  inputs [B, S], lengths [B] -> `decoding.Hypotheses` without the K axis,
  plus the attention weights [B, L, S] if return_attention.
  """
  step, carry = _encode_for_decoding(model, params, inputs, lengths)
  return decoding.greedy(step, carry, inputs.shape[0], max_len=max_len,
                         record_aux=return_attention)


@functools.partial(jax.jit, static_argnames=("model", "beam_size", "max_len"))
def beam_search(model, params, inputs, lengths, *, beam_size: int,
                max_len: int, alpha: float = 1.0) -> decoding.Hypotheses:
  """K-best decoding (`decoding.beam_search`).

  inputs [B, S], lengths [B] -> `decoding.Hypotheses` with a K axis, sorted
  by score (log p / length**alpha), best first.
  """
  step, carry = _encode_for_decoding(model, params, inputs, lengths, beam_size)
  return decoding.beam_search(step, carry, inputs.shape[0],
                              beam_size=beam_size, max_len=max_len, alpha=alpha)


def sequence_log_probs(model, params, inputs, lengths, outputs,
                       output_lengths) -> jax.Array:
  """Teacher-forced log p(outputs | inputs), summed over the first
  output_lengths tokens. outputs [B, T] (EOS included) -> [B]."""
  logits = model.apply({"params": params}, inputs, lengths,
                       decoding.teacher_forcing_inputs(outputs))
  return decoding.sequence_log_probs(logits, outputs, output_lengths)
