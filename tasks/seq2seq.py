"""What every sequence-to-sequence task shares: batches, loss, metrics, model.

B = batch, S = source steps, T = target steps, V = target vocabulary.

A seq2seq batch (dict of numpy arrays):
  inputs          [B, S] int32 source ids, PAD (0) after each source's end
  lengths         [B]    int32 source lengths (>= 1)
  decoder_inputs  [B, T] int32 BOS followed by the target shifted right
  targets         [B, T] int32 target ids ending with EOS, PAD after it
  target_lengths  [B]    int32 tokens of each target, EOS included (0 marks
                         a padding row of an evaluation batch)

Loss: cross-entropy per target token, averaged over the real tokens of the
batch (padding counts nowhere). Metrics are sums over real tokens and
sequences: 'nll', 'tokens', 'correct' (argmax hits), 'sequences',
'exact' (sequences whose every token, EOS included, is the argmax).
Because greedy decoding picks the argmax after a correct prefix, a sequence
is 'exact' under teacher forcing exactly when greedy decoding reproduces it:
sequence_accuracy is greedy decoding's exact-match accuracy (tested).

Vocabularies give: size, encode(text) -> list[int] (no EOS), decode(ids) ->
text (stops at EOS, skips PAD/BOS), and unknown(text) -> the characters it
cannot represent.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from typing import Any, Iterator, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from models import seq2seq as s2s
from tasks import base

PAD, BOS, EOS = s2s.PAD, s2s.BOS, s2s.EOS
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>")


# ----------------------------------------------------------------------------
# Vocabulary of characters (toy tasks).

class CharVocabulary:
  """PAD, BOS, EOS, then one id per character of `alphabet`."""

  def __init__(self, alphabet: str):
    if len(set(alphabet)) != len(alphabet) or not alphabet:
      raise ValueError(f"alphabet: expected distinct characters, got {alphabet!r}")
    self.alphabet = alphabet
    self._ids = {ch: i + len(SPECIAL_TOKENS) for i, ch in enumerate(alphabet)}

  @property
  def size(self) -> int:
    return len(SPECIAL_TOKENS) + len(self.alphabet)

  def unknown(self, text: str) -> list[str]:
    return sorted({ch for ch in text if ch not in self._ids})

  def encode(self, text: str) -> list[int]:
    """Characters -> ids; ValueError naming characters outside the alphabet."""
    missing = self.unknown(text)
    if missing:
      raise ValueError(f"text: characters {missing} are not in the alphabet "
                       f"{self.alphabet!r}")
    return [self._ids[ch] for ch in text]

  def decode(self, ids: Sequence[int]) -> str:
    chars = []
    for i in ids:
      i = int(i)
      if i == EOS:
        break
      if i >= len(SPECIAL_TOKENS):
        chars.append(self.alphabet[i - len(SPECIAL_TOKENS)])
    return "".join(chars)


# ----------------------------------------------------------------------------
# Batches.

def make_batch(sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]],
               source_len: int, target_len: int, rows: int | None = None):
  """Id lists -> a padded batch (module docstring); EOS is appended to each
  target. rows > len(sources) adds padding rows (target_lengths 0)."""
  rows = len(sources) if rows is None else rows
  if len(sources) != len(targets) or rows < len(sources):
    raise ValueError(f"sources/targets/rows: expected equal counts and rows >= "
                     f"them, got {len(sources)}, {len(targets)}, {rows}")
  batch = {"inputs": np.zeros((rows, source_len), np.int32),
           "lengths": np.ones((rows,), np.int32),
           "decoder_inputs": np.zeros((rows, target_len), np.int32),
           "targets": np.zeros((rows, target_len), np.int32),
           "target_lengths": np.zeros((rows,), np.int32)}
  for row, (source, target) in enumerate(zip(sources, targets)):
    target = list(target) + [EOS]
    if not 1 <= len(source) <= source_len or len(target) > target_len:
      raise ValueError(f"row {row}: source of {len(source)} ids (expected 1.."
                       f"{source_len}) or target of {len(target)} ids with EOS "
                       f"(expected <= {target_len})")
    batch["inputs"][row, :len(source)] = source
    batch["lengths"][row] = len(source)
    batch["targets"][row, :len(target)] = target
    batch["decoder_inputs"][row, 0] = BOS
    batch["decoder_inputs"][row, 1:len(target)] = target[:-1]
    batch["target_lengths"][row] = len(target)
  return batch


def bucket_of(length: int, boundaries: Sequence[int]) -> int:
  """The smallest boundary >= length (ValueError past the last one)."""
  for boundary in boundaries:
    if length <= boundary:
      return boundary
  raise ValueError(f"length: {length} exceeds the largest bucket "
                   f"{boundaries[-1]}")


def _fingerprint(examples) -> str:
  digest = hashlib.sha256()
  for source, target in examples:
    digest.update(np.asarray(source, np.int32).tobytes() + b"|" +
                  np.asarray(target, np.int32).tobytes() + b"\n")
  return digest.hexdigest()[:16]


class BucketedBatches(Iterator[dict]):
  """Endless epochs of full batches of id pairs, bucketed by length.

  Each example goes to the bucket of max(source length, target length + 1)
  (see `bucket_of`); a batch pads source and target to its bucket's
  boundary, so jit sees one shape per bucket. Epoch e shuffles each bucket
  with numpy's generator seeded by (seed, e), cuts it into full batches (the
  remainder waits for another epoch's shuffle) and shuffles the batch order.
  The position is (epoch, batch index): get_state()/set_state() round-trip
  through JSON, so a resumed run sees the same batches.
  """

  def __init__(self, examples: Sequence[tuple[Sequence[int], Sequence[int]]],
               batch_size: int, boundaries: Sequence[int], seed: int):
    if batch_size <= 0:
      raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
    self.examples = list(examples)
    self.batch_size, self.boundaries, self.seed = batch_size, list(boundaries), seed
    self._buckets: dict[int, list[int]] = {}
    for i, (source, target) in enumerate(self.examples):
      key = bucket_of(max(len(source), len(target) + 1), self.boundaries)
      self._buckets.setdefault(key, []).append(i)
    if not any(len(v) >= batch_size for v in self._buckets.values()):
      raise ValueError(f"batch_size: no length bucket holds {batch_size} "
                       f"examples (bucket sizes "
                       f"{ {k: len(v) for k, v in sorted(self._buckets.items())} })")
    self._fingerprint = _fingerprint(self.examples)
    self._epoch, self._position, self._plan = 0, 0, None

  def _epoch_plan(self, epoch: int) -> list[tuple[int, np.ndarray]]:
    rng = np.random.default_rng([self.seed, epoch])
    plan = []
    for boundary in sorted(self._buckets):
      order = rng.permutation(np.asarray(self._buckets[boundary]))
      for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
        plan.append((boundary, order[start:start + self.batch_size]))
    return [plan[i] for i in rng.permutation(len(plan))]

  @property
  def batches_per_epoch(self) -> int:
    return sum(len(v) // self.batch_size for v in self._buckets.values())

  def __next__(self) -> dict:
    if self._plan is None:
      self._plan = self._epoch_plan(self._epoch)
    if self._position >= len(self._plan):
      self._epoch, self._position = self._epoch + 1, 0
      self._plan = self._epoch_plan(self._epoch)
    boundary, rows = self._plan[self._position]
    self._position += 1
    return make_batch([self.examples[i][0] for i in rows],
                      [self.examples[i][1] for i in rows], boundary, boundary)

  def get_state(self) -> dict[str, Any]:
    return {"kind": "bucketed_pairs", "epoch": self._epoch,
            "position": self._position, "seed": self.seed,
            "batch_size": self.batch_size, "fingerprint": self._fingerprint}

  def set_state(self, state: dict[str, Any]) -> None:
    expected = {k: v for k, v in self.get_state().items()
                if k not in ("epoch", "position")}
    if {k: state.get(k) for k in expected} != expected:
      raise ValueError(f"data iterator state {state} does not belong to these "
                       f"examples ({expected})")
    self._epoch, self._position = int(state["epoch"]), int(state["position"])
    self._plan = None


def eval_batches(examples, batch_size: int, boundaries: Sequence[int]) -> list[dict]:
  """A fixed split as bucketed batches; the last batch of a bucket is
  filled with padding rows (target_lengths 0), so every example counts once."""
  if not examples:
    raise ValueError("examples: an evaluation split needs at least one example")
  buckets: dict[int, list] = {}
  for source, target in examples:
    key = bucket_of(max(len(source), len(target) + 1), boundaries)
    buckets.setdefault(key, []).append((source, target))
  batches = []
  for boundary in sorted(buckets):
    items = buckets[boundary]
    for start in range(0, len(items), batch_size):
      chunk = items[start:start + batch_size]
      batches.append(make_batch([s for s, _ in chunk], [t for _, t in chunk],
                                boundary, boundary, rows=batch_size))
  return batches


# ----------------------------------------------------------------------------
# Loss and metrics.

def parse_length_buckets(spec: str) -> tuple[tuple[int, int], ...]:
  """'1-6,7-12' -> ((1, 6), (7, 12)): source-length ranges, inclusive, for
  exact-match accuracy by length ('' -> none); ValueError if malformed."""
  buckets = []
  for part in filter(None, (p.strip() for p in spec.split(","))):
    low, sep, high = part.partition("-")
    try:
      low, high = int(low), int(high)
    except ValueError:
      low = high = 0
    if not sep or not 1 <= low <= high:
      raise ValueError(f"length_buckets: expected ranges like '1-6,7-12' "
                       f"(1 <= low <= high), got {spec!r}")
    buckets.append((low, high))
  return tuple(buckets)


def loss(logits, batch, length_buckets: Sequence[tuple[int, int]] = ()):
  """logits [B, T, V] -> (mean token cross-entropy, sums). With
  length_buckets ((low, high) source lengths, inclusive), the sums also
  count each bucket's sequences and exact matches ('sequences_len_LOW-HIGH',
  'exact_len_LOW-HIGH'), which `summarize` turns into
  'sequence_accuracy_len_LOW-HIGH'."""
  batch_size, steps, vocab = logits.shape
  targets = batch["targets"]
  nll = optax.softmax_cross_entropy_with_integer_labels(
      logits.reshape(batch_size * steps, vocab),
      targets.reshape(batch_size * steps)).reshape(batch_size, steps)
  mask = base.step_mask(batch["target_lengths"], steps)
  hits = (jnp.argmax(logits, -1) == targets) & mask
  real = batch["target_lengths"] > 0
  exact = jnp.all(hits | ~mask, axis=1) & real
  maskf = mask.astype(nll.dtype)
  total = jnp.sum(nll * maskf)
  tokens = jnp.sum(maskf)
  sums = {"nll": total, "tokens": tokens, "correct": jnp.sum(hits),
          "sequences": jnp.sum(real), "exact": jnp.sum(exact)}
  for low, high in length_buckets:
    inside = real & (batch["lengths"] >= low) & (batch["lengths"] <= high)
    sums[f"sequences_len_{low}-{high}"] = jnp.sum(inside)
    sums[f"exact_len_{low}-{high}"] = jnp.sum(exact & inside)
  return total / jnp.maximum(tokens, 1.0), sums


def summarize(totals):
  nll = base.ratio(totals, "nll", "tokens")
  metrics = {"nll": nll, "perplexity": math.exp(min(nll, 700.0)),
             "token_accuracy": base.ratio(totals, "correct", "tokens"),
             "sequence_accuracy": base.ratio(totals, "exact", "sequences"),
             "sequences": int(totals["sequences"])}
  buckets = [key[len("exact_len_"):] for key in totals if key.startswith("exact_len_")]
  for bucket in sorted(buckets, key=lambda b: int(b.split("-")[0])):  # shortest first
    metrics[f"sequence_accuracy_len_{bucket}"] = base.ratio(
        totals, f"exact_len_{bucket}", f"sequences_len_{bucket}")
  return metrics


# ----------------------------------------------------------------------------
# The task and the model from config keys.

@dataclasses.dataclass(frozen=True)
class Seq2seqTask(base.Task):
  """A Task whose model also reads the decoder inputs; keeps its vocabularies."""
  source_vocab: Any = None
  target_vocab: Any = None

  def apply(self, params, batch, rng, carry=(), *, train: bool):
    logits = self.model.apply(
        {"params": params}, batch["inputs"], batch["lengths"],
        batch["decoder_inputs"], deterministic=not train,
        rngs={"dropout": rng} if train else None)
    return logits, carry

  def init_params(self, rng, batch):
    return _init_params(self.model, rng, batch["inputs"], batch["lengths"],
                        batch["decoder_inputs"])


@functools.partial(jax.jit, static_argnames="model")
def _init_params(model, rng, inputs, lengths, decoder_inputs):
  return model.init(rng, inputs, lengths, decoder_inputs)["params"]


def build_model(config, source_size: int, target_size: int) -> s2s.Seq2seq:
  """The Seq2seq model described by the config's model keys."""
  return s2s.Seq2seq(
      src_vocab_size=source_size, tgt_vocab_size=target_size,
      embed_size=config.embed_size, hidden_size=config.hidden_size,
      num_layers=config.num_layers, cell=config.cell,
      bidirectional=config.bidirectional, attention=config.attention,
      input_feeding=config.input_feeding, bridge=config.bridge,
      reverse_source=config.reverse_source, dropout_rate=config.dropout_rate,
      cell_options=flax.core.FrozenDict(base.cell_options(config)))


def sequence_solved(threshold: float):
  return lambda metrics: metrics["sequence_accuracy"] >= threshold


def even_length_buckets(max_len: int, count: int = 4) -> str:
  """1..max_len in `count` near-equal ranges, as a length_buckets spec."""
  edges = np.linspace(0, max_len, min(count, max_len) + 1).round().astype(int)
  return ",".join(f"{a + 1}-{b}" for a, b in zip(edges[:-1], edges[1:]))


def generated_task(config, vocab, train_batches, eval_splits,
                   length_buckets: str | None = None) -> Seq2seqTask:
  """A generated (toy) task whose source and target share `vocab`: the model
  from the config, this module's loss and metrics (with exact-match
  accuracy by source length for `length_buckets`, default
  config.length_buckets, e.g. '1-6,7-12'),
  solved at config.solved_accuracy sequence accuracy."""
  if length_buckets is None:
    length_buckets = config.get("length_buckets", "")
  buckets = parse_length_buckets(length_buckets)
  return Seq2seqTask(
      model=build_model(config, vocab.size, vocab.size),
      loss=functools.partial(loss, length_buckets=buckets) if buckets else loss,
      summarize=summarize, solved=sequence_solved(config.solved_accuracy),
      train_batches=train_batches, eval_splits=eval_splits,
      source_vocab=vocab, target_vocab=vocab)
