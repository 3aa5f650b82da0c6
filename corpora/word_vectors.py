"""Word vectors from unlabeled text: PPMI + truncated SVD (Levy, Goldberg & Dagan 2015).

No pretrained vectors ship in a package here, so a task that wants them
counts them from the text it has: word-context co-occurrences in a
symmetric window, weighted 1/distance (as word2vec's dynamic window does on
average), positive pointwise mutual information with the context counts
raised to 0.75, then the top `dim` singular vectors, U * sqrt(S), each row
scaled to unit length. Rows are the task's vocabulary; columns are the
corpus's most frequent words. Words the corpus never shows keep no vector
(`WordVectors.found` is false) and the model initialises them at random.

Vectors are cached under DATA_DIR/word_vectors/ by a hash of everything
they depend on (settings, vocabulary, corpus fingerprint).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Callable, Sequence

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

CONTEXT_POWER = 0.75   # context-distribution smoothing (Levy et al. 2015)


@dataclasses.dataclass(frozen=True)
class WordVectors:
  """vectors [V, dim] float32 (unit rows where found, zeros elsewhere),
  found [V] bool: the word occurs in the corpus at least once."""
  vectors: np.ndarray
  found: np.ndarray

  def fingerprint(self) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(self.vectors).tobytes())
    digest.update(np.packbits(self.found).tobytes())
    return digest.hexdigest()


def cooccurrences(token_ids: Sequence[np.ndarray], row_of: np.ndarray,
                  col_of: np.ndarray, num_rows: int, num_cols: int,
                  window: int) -> scipy.sparse.csr_matrix:
  """[num_rows, num_cols] sums of 1/d over pairs (word, context) d <= window
  apart within one sequence, both directions.

  token_ids: per sequence, corpus word ids; row_of / col_of map a corpus id
  to its row / column, or -1 for none.
  """
  if window < 1:
    raise ValueError(f"window: expected an integer >= 1, got {window}")
  total = scipy.sparse.csr_matrix((num_rows, num_cols), dtype=np.float64)
  ids = np.concatenate([np.asarray(s, np.int64) for s in token_ids]) if token_ids else (
      np.zeros(0, np.int64))
  seq = np.concatenate([np.full(len(s), i) for i, s in enumerate(token_ids)]) if (
      token_ids) else np.zeros(0, np.int64)
  rows, cols = row_of[ids], col_of[ids]
  for d in range(1, window + 1):
    same = seq[d:] == seq[:-d]
    for r, c in ((rows[:-d], cols[d:]), (rows[d:], cols[:-d])):
      keep = same & (r >= 0) & (c >= 0)
      total = total + scipy.sparse.csr_matrix(
          (np.full(int(keep.sum()), 1.0 / d), (r[keep], c[keep])),
          shape=(num_rows, num_cols))
  return total


def ppmi(counts: scipy.sparse.csr_matrix, context_power: float = CONTEXT_POWER
         ) -> scipy.sparse.csr_matrix:
  """max(0, log(p(w, c) / (p(w) p_power(c)))) on the nonzero entries, where
  p_power(c) is the column sums raised to `context_power`, normalised."""
  counts = counts.tocoo()
  total = counts.sum()
  row_sums = np.asarray(counts.sum(axis=1)).ravel()
  col_sums = np.asarray(counts.sum(axis=0)).ravel() ** context_power
  p_context = col_sums / max(col_sums.sum(), 1e-300)
  values = np.log(counts.data * 1.0 / total
                  / (row_sums[counts.row] / total) / p_context[counts.col])
  keep = values > 0
  return scipy.sparse.csr_matrix(
      (values[keep], (counts.row[keep], counts.col[keep])), shape=counts.shape)


def svd_vectors(matrix: scipy.sparse.csr_matrix, dim: int, seed: int = 0) -> np.ndarray:
  """[rows, dim]: U * sqrt(S) of the top `dim` singular triplets, rows scaled
  to unit length (zero rows stay zero). Signs follow the largest |entry| of
  each singular vector, so the result does not depend on the solver's."""
  if not 0 < dim < min(matrix.shape):
    raise ValueError(f"dim: expected 0 < dim < {min(matrix.shape)} (the smaller "
                     f"side of the PPMI matrix), got {dim}")
  rng = np.random.default_rng(seed)
  u, s, _ = scipy.sparse.linalg.svds(matrix.astype(np.float64), k=dim,
                                     v0=rng.standard_normal(min(matrix.shape)))
  order = np.argsort(-s)
  u, s = u[:, order], s[order]
  signs = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(dim)])
  vectors = u * signs * np.sqrt(s)
  norms = np.linalg.norm(vectors, axis=1, keepdims=True)
  return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def ppmi_svd(corpus: Sequence[Sequence[str]], vocabulary: Sequence[str], dim: int, *,
             window: int = 5, max_contexts: int = 20_000, seed: int = 0) -> WordVectors:
  """Vectors for `vocabulary` (row k = vocabulary[k]) from the token lists of
  `corpus`, contexts the `max_contexts` most frequent corpus words."""
  index: dict[str, int] = {}
  token_ids = [np.fromiter((index.setdefault(t, len(index)) for t in tokens), np.int64,
                           count=len(tokens)) for tokens in corpus]
  counts = np.bincount(np.concatenate(token_ids), minlength=len(index)) if index else (
      np.zeros(0, np.int64))
  words = list(index)
  by_frequency = sorted(range(len(words)), key=lambda i: (-counts[i], words[i]))
  col_of = np.full(len(words), -1, np.int64)
  col_of[by_frequency[:max_contexts]] = np.arange(min(max_contexts, len(words)))
  row_of = np.full(len(words), -1, np.int64)
  for row, word in enumerate(vocabulary):
    if word in index:
      row_of[index[word]] = row
  matrix = ppmi(cooccurrences(token_ids, row_of, col_of, len(vocabulary),
                              int((col_of >= 0).sum()), window))
  vectors = svd_vectors(matrix, dim, seed)
  found = np.asarray(matrix.getnnz(axis=1) > 0)
  return WordVectors(vectors=np.where(found[:, None], vectors, 0.0).astype(np.float32),
                     found=found)


def cached(cache_dir: str, key: dict, compute: Callable[[], WordVectors]) -> WordVectors:
  """compute(), stored as CACHE_DIR/word_vectors/<sha of key>.npz and read
  back on the next call with an equal key."""
  name = hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()[:20]
  path = os.path.join(cache_dir, "word_vectors", f"{name}.npz")
  try:
    with np.load(path) as stored:
      return WordVectors(vectors=stored["vectors"], found=stored["found"])
  except (OSError, KeyError, ValueError):
    pass
  vectors = compute()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  partial = f"{path}.{os.getpid()}.tmp.npz"
  np.savez(partial, vectors=vectors.vectors, found=vectors.found)
  os.replace(partial, path)
  return vectors


def embedding_init(vectors: WordVectors, scale: float = 1.0):
  """A Flax embedding initialiser: found rows are the vectors times `scale`,
  the others drawn as Flax's default (normal, variance 1 / dim)."""
  import jax
  import jax.numpy as jnp

  def init(key, shape, dtype=jnp.float32):
    if tuple(shape) != vectors.vectors.shape:
      raise ValueError(f"word vectors: the embedding is {tuple(shape)}, the vectors "
                       f"{vectors.vectors.shape}")
    random = jax.random.normal(key, shape, dtype) / np.sqrt(shape[1])
    return jnp.where(vectors.found[:, None],
                     jnp.asarray(vectors.vectors * scale, dtype), random)
  return init
