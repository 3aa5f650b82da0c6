"""Addition as sequence to sequence: "123+45" -> "168" (Zaremba & Sutskever
2014, Learning to Execute; Flax's seq2seq example).

Operands are uniform in [0, 10**num_digits - 1], written in decimal without
leading zeros; the source is "a+b", the target the digits of a + b, ended by
EOS. Characters: digits and '+'.

Held-out pairs: every ordered pair (a, b) belongs to one partition by a
fixed hash of (a, b): 1% validation, 1% test, 98% training. Training
batches only ever draw training pairs, so the validation and test
accuracies are on pairs never seen in training (for 3 digits: about 10,000
held-out pairs each out of 1,000,000).

Reported: sequence_accuracy (exact match of the whole answer; equal to greedy
decoding's, see tasks/seq2seq.py), token accuracy and perplexity.
"""

from __future__ import annotations

import functools

import numpy as np

import input_pipeline
from tasks import seq2seq

ALPHABET = "0123456789+"
PARTS = {"valid": 0, "test": 1}   # hash % 100 -> part; the rest is training
VOCAB = seq2seq.CharVocabulary(ALPHABET)


def _mix(x: np.ndarray) -> np.ndarray:
  """splitmix64 finaliser: a fixed, well-spread hash of uint64 values."""
  x = x.astype(np.uint64)
  with np.errstate(over="ignore"):
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def part_of(a: np.ndarray, b: np.ndarray, num_digits: int) -> np.ndarray:
  """'valid', 'test' or 'train' for each pair, as an array of str."""
  code = _mix(np.asarray(a, np.uint64) * np.uint64(10 ** num_digits)
              + np.asarray(b, np.uint64)) % np.uint64(100)
  return np.where(code == PARTS["valid"], "valid",
                  np.where(code == PARTS["test"], "test", "train"))


def sample_pairs(rng: np.random.Generator, count: int, num_digits: int,
                 part: str) -> tuple[np.ndarray, np.ndarray]:
  """`count` operand pairs from one partition (rejection sampling)."""
  high = 10 ** num_digits
  a_all, b_all = [], []
  need = count
  while need > 0:
    draw = max(4 * need, 64) * (1 if part == "train" else 60)
    a = rng.integers(0, high, draw)
    b = rng.integers(0, high, draw)
    keep = part_of(a, b, num_digits) == part
    a_all.append(a[keep][:need])
    b_all.append(b[keep][:need])
    need -= len(a_all[-1])
  return np.concatenate(a_all), np.concatenate(b_all)


def make_batch(rng: np.random.Generator, batch_size: int, *, num_digits: int,
               part: str):
  """A seq2seq batch (tasks/seq2seq.py) padded to the longest possible
  problem: source 2 * num_digits + 1, target num_digits + 2 (EOS included)."""
  a, b = sample_pairs(rng, batch_size, num_digits, part)
  sources = [VOCAB.encode(f"{x}+{y}") for x, y in zip(a, b)]
  targets = [VOCAB.encode(str(x + y)) for x, y in zip(a, b)]
  return seq2seq.make_batch(sources, targets, 2 * num_digits + 1,
                            num_digits + 2)


def build(config) -> seq2seq.Seq2seqTask:
  if config.num_digits < 1 or config.num_digits > 9:
    raise ValueError(f"num_digits: expected an integer in [1, 9], got "
                     f"{config.num_digits}")
  maker = functools.partial(make_batch, num_digits=config.num_digits)
  train = input_pipeline.GeneratedBatches(
      functools.partial(maker, part="train"), config.batch_size, config.seed)
  evals = {split: input_pipeline.generated_split(
      functools.partial(maker, part=split), split, config.num_eval_examples,
      config.eval_batch_size, config.data_seed) for split in ("valid", "test")}
  return seq2seq.generated_task(config, VOCAB, train, evals)


def vocabularies(config, workdir: str | None = None):
  """(source, target) vocabularies, without building the data."""
  del config, workdir
  return VOCAB, VOCAB
