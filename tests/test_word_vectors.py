"""corpora/word_vectors.py against Python loops and numpy's dense SVD; the
sentiment task's embedding starting from them."""

import json
import math

import jax
import numpy as np
import pytest
import scipy.sparse

from corpora import word_vectors
from tasks import sentiment
from tests.test_text_tasks import fake_reviews, small_sentiment_config  # noqa: F401


def loop_cooccurrences(corpus, rows, cols, window):
  """{(row word, context word): sum of 1/d}, by a plain loop."""
  counts = {}
  for tokens in corpus:
    for i, word in enumerate(tokens):
      for j, context in enumerate(tokens):
        d = abs(i - j)
        if 0 < d <= window and word in rows and context in cols:
          counts[word, context] = counts.get((word, context), 0.0) + 1.0 / d
  return counts


def test_cooccurrences_equal_a_python_loop():
  rng = np.random.default_rng(0)
  words = [f"w{i}" for i in range(7)]
  corpus = [[words[k] for k in rng.integers(0, 7, size=n)] for n in (9, 1, 0, 5, 12)]
  rows, cols = words[:5], words[2:]
  index = {w: i for i, w in enumerate(words)}
  ids = [np.asarray([index[t] for t in tokens], np.int64) for tokens in corpus]
  row_of = np.asarray([rows.index(w) if w in rows else -1 for w in words])
  col_of = np.asarray([cols.index(w) if w in cols else -1 for w in words])
  got = word_vectors.cooccurrences(ids, row_of, col_of, len(rows), len(cols), 3).toarray()
  want = np.zeros_like(got)
  for (w, c), value in loop_cooccurrences(corpus, set(rows), set(cols), 3).items():
    want[rows.index(w), cols.index(c)] = value
  np.testing.assert_allclose(got, want, rtol=1e-12)


def test_ppmi_is_the_closed_form_clipped_at_zero():
  counts = np.asarray([[4.0, 0.0, 1.0], [1.0, 2.0, 0.5], [0.0, 3.0, 0.25]])
  got = word_vectors.ppmi(scipy.sparse.csr_matrix(counts), context_power=0.75).toarray()
  total = counts.sum()
  context = counts.sum(axis=0) ** 0.75
  for i in range(3):
    for j in range(3):
      if counts[i, j] == 0:
        assert got[i, j] == 0
        continue
      pmi = math.log((counts[i, j] / total)
                     / (counts[i].sum() / total) / (context[j] / context.sum()))
      assert got[i, j] == pytest.approx(max(pmi, 0.0), rel=1e-12)


def test_svd_vectors_equal_numpy_dense_svd_up_to_sign():
  rng = np.random.default_rng(1)
  dense = np.abs(rng.standard_normal((12, 9))) * (rng.random((12, 9)) < 0.5)
  dense[3] = 0.0   # a word with no context keeps a zero vector
  got = word_vectors.svd_vectors(scipy.sparse.csr_matrix(dense), 4)
  u, s, _ = np.linalg.svd(dense)
  want = u[:, :4] * np.sqrt(s[:4])
  want[3] = 0.0   # exactly 0 in theory, rounding noise in numpy
  norms = np.linalg.norm(want, axis=1, keepdims=True)
  want = want / np.where(norms > 0, norms, 1.0)
  for k in range(4):
    sign = np.sign(got[:, k] @ want[:, k])
    np.testing.assert_allclose(got[:, k], sign * want[:, k], atol=1e-5)
  assert np.all(got[3] == 0)
  with pytest.raises(ValueError, match="dim"):
    word_vectors.svd_vectors(scipy.sparse.csr_matrix(dense), 9)


def test_words_in_the_same_contexts_get_close_vectors():
  rng = np.random.default_rng(2)
  left, right = ["x1", "x2", "x3"], ["y1", "y2", "y3"]
  corpus = []
  for _ in range(300):   # a* between x contexts, b* between y contexts
    corpus.append([rng.choice(left), rng.choice(["a1", "a2"]), rng.choice(left)])
    corpus.append([rng.choice(right), rng.choice(["b1", "b2"]), rng.choice(right)])
  vocabulary = ["<pad>", "a1", "a2", "b1", "b2", "never_seen"]
  vectors = word_vectors.ppmi_svd(corpus, vocabulary, 2, window=1)
  assert vectors.found.tolist() == [False, True, True, True, True, False]
  v = vectors.vectors
  assert v[1] @ v[2] > 0.99 and v[3] @ v[4] > 0.99
  assert abs(v[1] @ v[3]) < 0.1
  np.testing.assert_allclose(np.linalg.norm(v[1:5], axis=1), 1.0, rtol=1e-5)
  assert np.all(v[[0, 5]] == 0)


def test_cache_returns_the_stored_vectors_for_an_equal_key(tmp_path):
  made = word_vectors.WordVectors(np.arange(6, dtype=np.float32).reshape(3, 2),
                                  np.asarray([True, False, True]))
  first = word_vectors.cached(str(tmp_path), {"a": 1}, lambda: made)

  def must_not_run():
    raise AssertionError("computed again")
  again = word_vectors.cached(str(tmp_path), {"a": 1}, must_not_run)
  np.testing.assert_array_equal(again.vectors, made.vectors)
  assert again.fingerprint() == first.fingerprint()
  other = word_vectors.cached(str(tmp_path), {"a": 2}, lambda: word_vectors.WordVectors(
      np.zeros((3, 2), np.float32), np.zeros(3, bool)))
  assert other.fingerprint() != first.fingerprint()


def test_embedding_init_keeps_found_rows_and_draws_the_rest():
  vectors = word_vectors.WordVectors(
      np.asarray([[0.0] * 4, [0.6, 0.8, 0.0, 0.0]] * 50, np.float32),
      np.asarray([False, True] * 50))
  table = np.asarray(word_vectors.embedding_init(vectors)(jax.random.PRNGKey(0), (100, 4)))
  np.testing.assert_array_equal(table[1::2], vectors.vectors[1::2])
  assert np.std(table[0::2]) == pytest.approx(0.5, rel=0.2)   # 1 / sqrt(dim)
  with pytest.raises(ValueError, match="embedding is"):
    word_vectors.embedding_init(vectors)(jax.random.PRNGKey(0), (100, 3))


def test_sentiment_embedding_starts_from_train_text_vectors(fake_reviews, tmp_path,  # noqa: F811
                                                            monkeypatch):
  read = sentiment.sentiment_data.read_split
  splits_read = []

  def recording_read(name, split, data_dir=None):
    splits_read.append((name, split))
    return read(name, split, data_dir=data_dir)
  monkeypatch.setattr(sentiment.sentiment_data, "read_split", recording_read)
  config = small_sentiment_config(word_vectors="ppmi_svd", word_vectors_window=2,
                                  data_dir=str(tmp_path))
  task = sentiment.build(config)
  assert ("imdb", "train") in splits_read and ("rt", "train") in splits_read
  assert {s for n, s in splits_read if n == "imdb"} == {"train"}   # no held-out text
  stats = json.loads(task.run_files["data_stats.json"])["word_vectors"]
  params = task.init_params(jax.random.PRNGKey(0), task.first_batch())
  table = np.asarray(params["encoder"]["embed"]["embedding"])
  found = np.linalg.norm(table, axis=1)
  assert stats["ids_with_vector"] == 4   # great awful film dull; not <pad>, <unk>
  np.testing.assert_allclose(found[2:], 1.0, rtol=1e-5)
  assert len(list((tmp_path / "word_vectors").iterdir())) == 1
  again = sentiment.build(config)   # the cached vectors, the same model start
  params_again = again.init_params(jax.random.PRNGKey(0), again.first_batch())
  np.testing.assert_array_equal(np.asarray(params_again["encoder"]["embed"]["embedding"]),
                                table)


def test_frozen_embeddings_stay_as_initialised_while_the_rest_trains(
    fake_reviews, tmp_path):  # noqa: F811
  import train
  config = small_sentiment_config(word_vectors="ppmi_svd", freeze_embeddings=True,
                                  data_dir=str(tmp_path / "data"), num_train_steps=4,
                                  eval_every_steps=4, log_every_steps=2,
                                  progress_bar=False, dropout_rate=0.0)
  train.train_and_evaluate(config, str(tmp_path / "run"))
  _, task, trained, _ = train.load_trained(str(tmp_path / "run"))
  start = train.initial_state(config, task, train.make_optimizer(config)).params
  np.testing.assert_array_equal(np.asarray(trained["encoder"]["embed"]["embedding"]),
                                np.asarray(start["encoder"]["embed"]["embedding"]))
  assert not np.allclose(np.asarray(trained["head"]["kernel"]),
                         np.asarray(start["head"]["kernel"]))
  labels = train.embedding_labels(start)
  assert labels["encoder"]["embed"]["embedding"] == "frozen"
  assert labels["head"]["kernel"] == "trained"
