"""Sequence reversal "abcde" -> "edcba", or copying "abcde" -> "abcde"
(config.copy), standard seq2seq sanity tasks.

Sources are strings of 1..max_len symbols drawn uniformly from the first
num_symbols letters of the alphabet (lengths uniform); the target is the
source reversed (or, with copy=True, the source itself). Training,
validation and test strings come from separate seed streams
(input_pipeline.stream_rng); with the default 10 symbols and lengths up to
12 the space is ~10**12 strings, so held-out strings are almost surely
unseen.

Without attention the whole string must pass through the fixed vector, and
the time lags between reading a symbol and writing it decide how hard that
is (Sutskever et al. 2014, section 3.3). For a string of n symbols read
forwards, copying puts every output n steps after its input (like a
translation whose word order matches); reversal puts the first output 1
step after its input and the last 2n - 1 steps (the same average lag, but
short minimal lags). Reading the source backwards (the model's
reverse_source=True, Sutskever's trick) swaps the two: copy with a reversed
source has reversal's lags, and reversal with a reversed source has copy's.
So `copy=True` with and without `reverse_source` is the controlled test of
the trick.
"""

from __future__ import annotations

import functools
import string

import numpy as np

import input_pipeline
from tasks import seq2seq


def vocabulary(num_symbols: int) -> seq2seq.CharVocabulary:
  if not 2 <= num_symbols <= 26:
    raise ValueError(f"num_symbols: expected an integer in [2, 26], got "
                     f"{num_symbols}")
  return seq2seq.CharVocabulary(string.ascii_lowercase[:num_symbols])


def make_batch(rng: np.random.Generator, batch_size: int, *, max_len: int,
               num_symbols: int, copy: bool = False):
  """A seq2seq batch of random strings and their reversals (copies)."""
  lengths = rng.integers(1, max_len + 1, batch_size)
  sources, targets = [], []
  for length in lengths:
    ids = (rng.integers(0, num_symbols, length) + len(seq2seq.SPECIAL_TOKENS)).tolist()
    sources.append(ids)
    targets.append(list(ids) if copy else ids[::-1])
  return seq2seq.make_batch(sources, targets, max_len, max_len + 1)


def build(config) -> seq2seq.Seq2seqTask:
  if config.max_len < 1:
    raise ValueError(f"max_len: expected a positive integer, got {config.max_len}")
  vocab = vocabulary(config.num_symbols)
  maker = functools.partial(make_batch, max_len=config.max_len,
                            num_symbols=config.num_symbols,
                            copy=bool(config.get("copy", False)))
  train, evals = input_pipeline.generated_data(maker, config)
  buckets = config.get("length_buckets", "")
  if buckets == "auto":       # four near-equal source-length ranges
    buckets = seq2seq.even_length_buckets(config.max_len)
  return seq2seq.generated_task(config, vocab, train, evals, buckets)


def vocabularies(config, workdir: str | None = None):
  """(source, target) vocabularies, without building the data."""
  del workdir
  vocab = vocabulary(config.num_symbols)
  return vocab, vocab
