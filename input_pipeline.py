"""How data enters training: checkpointable batch iterators and fixed eval sets.

Every training iterator here has `get_state() -> dict` (JSON-serialisable)
and `set_state(dict)`, and the training loop saves that state in each
checkpoint, so a resumed run sees exactly the batches an uninterrupted one
would have seen.

Batches are dicts of numpy arrays with a leading batch axis B. Sequence
batches carry 'inputs' [B, T, ...] and 'lengths' [B] (int32, real steps).

Text for language models (second half of this module): `corpora` reads a
dataset's lines (TFDS, ArrayRecord, no TensorFlow); `tokenize` and
`Vocabulary` turn them into one stream of ids per split; `TBPTTBatches`
(training, via grain) and `tbptt_eval_batches` cut a stream into contiguous
batches for truncated backpropagation through time.

Text for classification and tagging (last part): `build_word_vocabulary`
('<pad>' 0, '<unk>' 1, min count, max size), `truncate`, and
`BucketedBatches` / `bucketed_eval_batches`, which batch examples of similar
length together, padded to their length bucket, so jit sees one shape per
bucket.
"""

from __future__ import annotations

import collections
import hashlib
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from models.checks import check_one_of

Batch = dict[str, np.ndarray]
# make_batch(rng, batch_size) -> Batch
BatchMaker = Callable[[np.random.Generator, int], Batch]

# Seed streams kept apart so train, valid and test data never coincide.
STREAMS = {"train": 0, "valid": 1, "test": 2}


def stream_rng(seed: int, stream: str, index: int) -> np.random.Generator:
  """The numpy generator for batch `index` of `stream` under `seed`."""
  return np.random.default_rng([seed, STREAMS[stream], index])


class GeneratedBatches(Iterator[Batch]):
  """An endless, reproducible stream of generated batches.

  Batch k depends only on (seed, k): resuming needs nothing but k.
  """

  def __init__(self, make_batch: BatchMaker, batch_size: int, seed: int):
    if batch_size <= 0:
      raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
    self._make_batch = make_batch
    self._batch_size = batch_size
    self._seed = seed
    self._index = 0

  def __next__(self) -> Batch:
    batch = self._make_batch(stream_rng(self._seed, "train", self._index),
                             self._batch_size)
    self._index += 1
    return batch

  def get_state(self) -> dict[str, Any]:
    return {"kind": "generated", "index": self._index, "seed": self._seed}

  def set_state(self, state: dict[str, Any]) -> None:
    if state.get("kind") != "generated" or state.get("seed") != self._seed:
      raise ValueError(f"data iterator state {state} does not belong to a "
                       f"generated stream with seed {self._seed}")
    self._index = int(state["index"])


def generated_split(make_batch: BatchMaker, split: str, num_examples: int,
                    batch_size: int, seed: int) -> list[Batch]:
  """A fixed evaluation set of `num_examples`, generated once, in batches."""
  if num_examples <= 0:
    raise ValueError(f"num_examples for split {split!r}: expected a positive "
                     f"integer, got {num_examples}")
  batches, done, index = [], 0, 0
  while done < num_examples:
    size = min(batch_size, num_examples - done)
    batches.append(make_batch(stream_rng(seed, split, index), size))
    done += size
    index += 1
  return batches


def generated_data(make_batch: BatchMaker, config):
  """-> (train stream, {'valid', 'test'} fixed sets) for a generated task.

  Uses config.batch_size, seed, num_eval_examples, eval_batch_size, data_seed.
  """
  train = GeneratedBatches(make_batch, config.batch_size, config.seed)
  evals = {split: generated_split(make_batch, split, config.num_eval_examples,
                                  config.eval_batch_size, config.data_seed)
           for split in ("valid", "test")}
  return train, evals


def check_batch(batch: Batch, where: str) -> None:
  """Clear errors for malformed sequence batches, before anything is jitted."""
  if "inputs" not in batch:
    raise ValueError(f"{where}: batch has no 'inputs'; keys are {sorted(batch)}")
  inputs = batch["inputs"]
  if inputs.ndim < 2:
    raise ValueError(f"{where}: 'inputs' must be [batch, time, ...], got shape "
                     f"{inputs.shape}")
  if inputs.shape[1] == 0:
    raise ValueError(f"{where}: 'inputs' has zero time steps (shape "
                     f"{inputs.shape}); empty sequences cannot be trained on")
  lengths = batch.get("lengths")
  if lengths is not None:
    if lengths.shape != inputs.shape[:1]:
      raise ValueError(f"{where}: 'lengths' must be [{inputs.shape[0]}], got "
                       f"{lengths.shape}")
    if lengths.min() < 1 or lengths.max() > inputs.shape[1]:
      raise ValueError(f"{where}: 'lengths' must lie in [1, {inputs.shape[1]}], "
                       f"got min {lengths.min()} and max {lengths.max()}")


# ----------------------------------------------------------------------------
# Text for language modelling: tokens, vocabulary, contiguous batches for
# truncated backpropagation through time (TBPTT).
#
# B = batch rows, T = unrolled steps per batch, N = tokens in a split,
# L = N // B tokens per row, V = vocabulary size.

EOS = "<eos>"
UNK = "<unk>"
TOKENIZERS = ("whitespace", "chars")


def tokenize(text: str, tokenizer: str = "whitespace") -> list[str]:
  """Each line's tokens followed by '<eos>' (Mikolov's PTB convention).

  tokenizer: 'whitespace' (words; also the char configs of `corpora`, whose
  text is already one character per token) or 'chars' (every character of
  the line, spaces included). An empty line is just '<eos>'.
  """
  check_one_of("tokenizer", tokenizer, TOKENIZERS)
  tokens = []
  for line in text.splitlines() or [""]:
    tokens.extend(line.split() if tokenizer == "whitespace" else line)
    tokens.append(EOS)
  return tokens


class Vocabulary:
  """A fixed token <-> id map; ids are int32 in [0, V).

  `Vocabulary.build` orders tokens by descending count, ties alphabetically
  (as TensorFlow's PTB reader), so the same corpus always gives the same ids.
  """

  def __init__(self, tokens: Sequence[str]):
    tokens = list(tokens)
    if not tokens:
      raise ValueError("tokens: a vocabulary needs at least one token")
    if len(set(tokens)) != len(tokens):
      raise ValueError("tokens: the vocabulary's tokens must be unique")
    self.tokens = tokens
    self._ids = {token: i for i, token in enumerate(tokens)}

  @classmethod
  def build(cls, tokens: Iterable[str]) -> "Vocabulary":
    counts = collections.Counter(tokens)
    return cls([t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))])

  def __len__(self) -> int:
    return len(self.tokens)

  def __contains__(self, token: str) -> bool:
    return token in self._ids

  def id_of(self, token: str) -> int:
    return self._ids[token]

  def encode(self, tokens: Sequence[str]) -> np.ndarray:
    """[N] int32 ids. Unknown tokens become '<unk>' if the vocabulary has it;
    otherwise they are an error naming the first one."""
    unk = self._ids.get(UNK)
    try:
      if unk is None:
        ids = [self._ids[t] for t in tokens]
      else:
        ids = [self._ids.get(t, unk) for t in tokens]
    except KeyError as e:
      raise ValueError(f"tokens: {e.args[0]!r} is not in the vocabulary of "
                       f"{len(self)} tokens, which has no {UNK!r}") from None
    return np.asarray(ids, np.int32)

  def decode(self, ids: Iterable[int]) -> list[str]:
    return [self.tokens[int(i)] for i in ids]


def load_lm_corpus(dataset: str, split_names: Sequence[str], *,
                   level: str = "word", data_dir: str | None = None,
                   text_feature: str = "text") -> tuple[Vocabulary, dict[str, np.ndarray]]:
  """Reads a text dataset's splits as token-id streams.

  Args:
    dataset: an offline corpus of `corpora` ('ptb', read as 'ptb/<level>') or
      a TFDS name (e.g. 'tiny_shakespeare'; downloaded where possible).
    split_names: TFDS split names; the vocabulary comes from the first one.
    level: 'word' or 'char'.

  Returns:
    (vocabulary, {split: [N] int32 ids}), each split's records in order,
    every line ended by '<eos>'.
  """
  import corpora  # pylint: disable=g-import-not-at-top  (keeps TFDS lazy)
  if level not in ("word", "char"):
    raise ValueError(f"level: expected 'word' or 'char', got {level!r}")
  if not split_names:
    raise ValueError("split_names: expected at least one split")
  if corpora.is_offline(dataset):
    name = dataset if "/" in dataset else f"{dataset}/{level}"
    tokenizer = "whitespace"  # the char config stores one character per token
  else:
    name, tokenizer = dataset, ("whitespace" if level == "word" else "chars")
  streams = {}
  for split in split_names:
    texts = corpora.read_texts(name, split, data_dir=data_dir,
                               text_feature=text_feature)
    streams[split] = [token for text in texts for token in tokenize(text, tokenizer)]
  vocab = Vocabulary.build(streams[split_names[0]])
  return vocab, {split: vocab.encode(tokens) for split, tokens in streams.items()}


def contiguous_rows(ids: np.ndarray, batch_size: int) -> np.ndarray:
  """[N] ids -> [B, L] with L = N // B: row b is tokens b*L ... b*L + L - 1.

  The stream is cut into B contiguous pieces (the last N mod B tokens are
  dropped), so consecutive batches of a row continue the same text.
  """
  ids = np.asarray(ids)
  if ids.ndim != 1:
    raise ValueError(f"ids: expected a 1-D token stream, got shape {ids.shape}")
  if batch_size <= 0:
    raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
  row_len = len(ids) // batch_size
  if row_len < 2:
    raise ValueError(f"batch_size: {batch_size} rows of a {len(ids)}-token "
                     f"stream leave fewer than 2 tokens per row")
  return ids[:batch_size * row_len].reshape(batch_size, row_len)


def _fingerprint(array: np.ndarray) -> str:
  return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


class _StepCounted:
  """A training iterator whose position is one step counter, `_step`.

  Subclasses define get_state() -> dict with 'step' and the fields that
  identify their stream; set_state accepts only a state of the same stream.
  """
  _step: int
  _stream = "stream"

  def get_state(self) -> dict[str, Any]:
    raise NotImplementedError

  def set_state(self, state: dict[str, Any]) -> None:
    expected = {k: v for k, v in self.get_state().items() if k != "step"}
    got = {k: state.get(k) for k in expected}
    if got != expected or not isinstance(state.get("step"), int) or state["step"] < 0:
      raise ValueError(f"data iterator state {state} does not belong to this "
                       f"{self._stream} ({expected})")
    self._step = state["step"]


class TBPTTBatches(_StepCounted, Iterator[Batch]):
  """Endless epochs of contiguous [B, T] batches for truncated BPTT.

  Batch k of an epoch (k < K = (L - 1) // T) is
    inputs  = rows[:, k*T     : k*T + T]      [B, T] int32
    targets = rows[:, k*T + 1 : k*T + T + 1]  [B, T] int32 (inputs shifted by one)
    reset   = [B] bool, True on the first batch of each epoch
  so row b of batch k + 1 starts exactly where row b of batch k stopped, and a
  model that carries its state across batches sees each row as one long
  sequence. The last (L - 1) mod T steps of each row are not trained on, as in
  Zaremba et al.'s reader. No shuffling: every epoch is the same.

  Built on a grain `MapDataset` (random access by step), so the position is
  just the step: get_state()/set_state() round-trip through JSON.
  """
  _stream = "token stream"


  def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int):
    if seq_len <= 0:
      raise ValueError(f"seq_len: expected a positive integer, got {seq_len}")
    import grain  # pylint: disable=g-import-not-at-top
    self.rows = contiguous_rows(ids, batch_size)             # [B, L]
    self.batch_size, self.seq_len = batch_size, seq_len
    self.num_tokens = int(np.size(ids))
    self.batches_per_epoch = (self.rows.shape[1] - 1) // seq_len
    if self.batches_per_epoch < 1:
      raise ValueError(f"seq_len: rows of {self.rows.shape[1]} tokens "
                       f"(batch_size {batch_size}) are too short for one batch "
                       f"of {seq_len} steps")
    self._fingerprint = _fingerprint(self.rows)
    self._dataset = (grain.MapDataset.range(self.batches_per_epoch)
                     .map(self._batch).repeat(None))
    self._step = 0

  def _batch(self, index: int) -> Batch:
    start = index * self.seq_len
    window = self.rows[:, start:start + self.seq_len + 1]    # [B, T + 1]
    return {"inputs": np.ascontiguousarray(window[:, :-1], dtype=np.int32),
            "targets": np.ascontiguousarray(window[:, 1:], dtype=np.int32),
            "reset": np.full((self.batch_size,), index == 0)}

  @property
  def epoch(self) -> int:
    """Epochs completed before the next batch."""
    return self._step // self.batches_per_epoch

  def __next__(self) -> Batch:
    batch = self._dataset[self._step]
    self._step += 1
    return batch

  def get_state(self) -> dict[str, Any]:
    return {"kind": "tbptt", "step": self._step, "batch_size": self.batch_size,
            "seq_len": self.seq_len, "num_tokens": self.num_tokens,
            "fingerprint": self._fingerprint}



def tbptt_eval_batches(ids: np.ndarray, batch_size: int, seq_len: int) -> list[Batch]:
  """A whole split as contiguous [B, T] batches, evaluated in order.

  Like `TBPTTBatches`' epoch, but the last batch takes the remaining
  (L - 1) mod T steps too, padded to T; 'lengths' [B] (int32, equal in every
  row) marks the real steps, and the loss must ignore the rest. Every token
  of each row but its first is predicted: B * (L - 1) targets.
  """
  if seq_len <= 0:
    raise ValueError(f"seq_len: expected a positive integer, got {seq_len}")
  rows = contiguous_rows(ids, batch_size)                    # [B, L]
  predicted = rows.shape[1] - 1
  batches = []
  for start in range(0, predicted, seq_len):
    steps = min(seq_len, predicted - start)
    inputs = np.zeros((batch_size, seq_len), np.int32)
    targets = np.zeros((batch_size, seq_len), np.int32)
    inputs[:, :steps] = rows[:, start:start + steps]
    targets[:, :steps] = rows[:, start + 1:start + steps + 1]
    batches.append({"inputs": inputs, "targets": targets,
                    "lengths": np.full((batch_size,), steps, np.int32),
                    "reset": np.full((batch_size,), start == 0)})
  return batches


# ----------------------------------------------------------------------------
# Text for classification (N -> 1) and tagging (N -> N): word vocabularies
# with padding and unknown ids, and batches of examples of similar length.
#
# N = examples in a split, B = batch rows, T = a bucket's padded steps.

PAD = "<pad>"
PAD_ID, UNK_ID = 0, 1       # the ids of PAD and UNK in `build_word_vocabulary`
TRUNCATIONS = ("keep_first", "keep_last")


def build_word_vocabulary(token_lists: Iterable[Sequence[str]], *, min_count: int = 1,
                          max_size: int = 0) -> Vocabulary:
  """'<pad>' (id 0), '<unk>' (id 1), then the tokens seen at least `min_count`
  times, most frequent first (ties alphabetically), at most `max_size` ids in
  all (0: no cap). Unknown tokens encode as '<unk>'."""
  if min_count < 1:
    raise ValueError(f"min_count: expected an integer >= 1, got {min_count}")
  if max_size and max_size < 3:
    raise ValueError(f"max_size: expected 0 (no cap) or room for '<pad>', "
                     f"'<unk>' and one token (>= 3), got {max_size}")
  counts = collections.Counter(t for tokens in token_lists for t in tokens)
  for special in (PAD, UNK):
    counts.pop(special, None)
  kept = [t for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
          if n >= min_count]
  if max_size:
    kept = kept[:max_size - 2]
  return Vocabulary([PAD, UNK, *kept])


def vocabulary_file(vocab: Vocabulary) -> bytes:
  """The vocabulary as UTF-8 text, one token per line, line k = id k."""
  for token in vocab.tokens:
    if not token or "\n" in token:
      raise ValueError(f"tokens: {token!r} cannot be written one per line")
  return ("\n".join(vocab.tokens) + "\n").encode("utf-8")


def read_vocabulary_file(contents: bytes) -> Vocabulary:
  """The inverse of `vocabulary_file`."""
  return Vocabulary(contents.decode("utf-8").split("\n")[:-1])


def truncate(ids: Sequence[int], max_len: int, truncation: str = "keep_first"):
  """The first (keep_first) or last (keep_last) max_len items of ids."""
  check_one_of("truncation", truncation, TRUNCATIONS)
  if max_len < 1:
    raise ValueError(f"max_len: expected an integer >= 1, got {max_len}")
  return ids[:max_len] if truncation == "keep_first" else ids[-max_len:]


def parse_bucket_boundaries(spec: str) -> tuple[int, ...]:
  """'32,64,128' -> (32, 64, 128): the padded lengths of the buckets, strictly
  increasing positive integers ('' -> (): one bucket, see `bucket_steps`)."""
  try:
    boundaries = tuple(int(p) for p in filter(None, (s.strip() for s in spec.split(","))))
  except ValueError:
    boundaries = (0,)
  if any(b < 1 for b in boundaries) or list(boundaries) != sorted(set(boundaries)):
    raise ValueError(f"bucket_boundaries: expected strictly increasing positive "
                     f"integers like '32,64,128', got {spec!r}")
  return boundaries


def bucket_steps(boundaries: Sequence[int], longest: int) -> tuple[int, ...]:
  """The padded lengths T of all buckets for sequences of up to `longest`
  steps: the boundaries below `longest`, then the first boundary >= longest
  (or `longest` itself if none is)."""
  steps = [b for b in boundaries if b < longest]
  return (*steps, next((b for b in boundaries if b >= longest), longest))


def bucket_index(lengths: Sequence[int], steps: Sequence[int]) -> np.ndarray:
  """[N] the bucket of each length: the first of `steps` >= it."""
  lengths = np.asarray(lengths, np.int64)
  if lengths.size and lengths.max() > steps[-1]:
    raise ValueError(f"lengths: {lengths.max()} exceeds the longest bucket "
                     f"({steps[-1]} steps)")
  return np.searchsorted(np.asarray(steps), lengths, side="left")


# make_rows(indices [B] (-1: a padding row), steps T) -> Batch
RowMaker = Callable[[np.ndarray, int], Batch]


def _chunks(indices: np.ndarray, batch_size: int) -> list[np.ndarray]:
  """Consecutive rows of batch_size; the last is filled with -1 (padding)."""
  chunks = []
  for start in range(0, len(indices), batch_size):
    chunk = np.full((batch_size,), -1, np.int64)
    part = indices[start:start + batch_size]
    chunk[:len(part)] = part
    chunks.append(chunk)
  return chunks


class BucketedBatches(_StepCounted, Iterator[Batch]):
  """Endless epochs of batches of examples of similar length.

  Epoch e (numpy generator seeded with [seed, e]) shuffles the examples,
  groups them by bucket (the first of `steps` >= the example's length),
  cuts each bucket into batches of B (its last batch filled with padding rows,
  index -1), and shuffles the batches. Every example is in exactly one batch
  of each epoch; a batch's time axis is its bucket's T, so jit compiles one
  program per bucket. Batch k is `make_rows(indices [B], T)`; make_rows marks
  padding rows (e.g. 'weights' 0) so that the loss and the example count
  skip them.

  get_state()/set_state() hold the step (batches so far) and what the stream
  was built from.
  """
  _stream = "bucketed stream"


  def __init__(self, lengths: Sequence[int], steps: Sequence[int],
               make_rows: RowMaker, batch_size: int, seed: int):
    if batch_size <= 0:
      raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
    if len(lengths) == 0:
      raise ValueError("lengths: no examples to batch")
    self._steps = tuple(int(s) for s in steps)
    self._bucket = bucket_index(lengths, self._steps)                    # [N]
    self._make_rows, self._batch_size, self._seed = make_rows, batch_size, seed
    counts = np.bincount(self._bucket, minlength=len(self._steps))
    self.batches_per_epoch = int(sum(-(-int(n) // batch_size) for n in counts))
    self._fingerprint = _fingerprint(np.asarray(lengths, np.int64))
    self._plan: tuple[int, list[tuple[int, np.ndarray]]] | None = None
    self._step = 0

  def epoch_plan(self, epoch: int) -> list[tuple[int, np.ndarray]]:
    """Epoch `epoch`'s batches in order: (bucket, indices [B], -1 = padding)."""
    if self._plan is None or self._plan[0] != epoch:
      rng = np.random.default_rng([self._seed, epoch])
      order = rng.permutation(len(self._bucket))
      batches = []
      for bucket in range(len(self._steps)):
        members = order[self._bucket[order] == bucket]
        batches.extend((bucket, chunk) for chunk in _chunks(members, self._batch_size))
      self._plan = (epoch, [batches[i] for i in rng.permutation(len(batches))])
    return self._plan[1]

  @property
  def epoch(self) -> int:
    """Epochs completed before the next batch."""
    return self._step // self.batches_per_epoch

  def __next__(self) -> Batch:
    bucket, indices = self.epoch_plan(self.epoch)[self._step % self.batches_per_epoch]
    self._step += 1
    return self._make_rows(indices, self._steps[bucket])

  def get_state(self) -> dict[str, Any]:
    return {"kind": "bucketed", "step": self._step, "seed": self._seed,
            "batch_size": self._batch_size, "steps": list(self._steps),
            "fingerprint": self._fingerprint}



def bucketed_eval_batches(lengths: Sequence[int], steps: Sequence[int],
                          make_rows: RowMaker, batch_size: int) -> list[Batch]:
  """A whole split in batches by bucket (examples in order within a bucket),
  each example exactly once; the last batch of a bucket is filled with
  padding rows (index -1), so every batch has B rows."""
  bucket = bucket_index(lengths, steps)
  batches = []
  for b, padded in enumerate(steps):
    for chunk in _chunks(np.flatnonzero(bucket == b), batch_size):
      batches.append(make_rows(chunk, padded))
  return batches


def pad_rows(rows: Sequence[Sequence[int] | None], steps: int,
             dtype=np.int32) -> np.ndarray:
  """B id lists (None: a padding row) -> [B, steps], zero-padded (PAD_ID)."""
  out = np.zeros((len(rows), steps), dtype)
  for b, row in enumerate(rows):
    if row is not None:
      out[b, :len(row)] = row
  return out
