"""Sentiment (N -> 1) and tagging (N -> N) on text: vocabularies, length
buckets (every example once per epoch, resumable, deterministic), pooling and
losses that ignore padding, character word vectors independent of padding,
and the tasks built from monkeypatched readers."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import input_pipeline
import train
from corpora import sentiment as sentiment_data
from corpora import ud
from experiments.configs import rules
from experiments.configs import sentiment as sentiment_config
from experiments.configs import tagging as tagging_config
from models import char_encoder
from models import classifier
from models import layers
from tasks import sentiment
from tasks import tagging


# ----------------------------------------------------------------------------
# Vocabulary and buckets.

def test_word_vocabulary_pad_unk_min_count_and_cap():
  vocab = input_pipeline.build_word_vocabulary(
      [["b", "a", "c", "a"], ["b", "a", "d", "<unk>"]], min_count=2)
  assert vocab.tokens == ["<pad>", "<unk>", "a", "b"]
  assert vocab.id_of("<pad>") == input_pipeline.PAD_ID
  assert list(vocab.encode(["a", "zz", "b"])) == [2, input_pipeline.UNK_ID, 3]
  capped = input_pipeline.build_word_vocabulary([["b", "a", "c", "a"]], max_size=3)
  assert capped.tokens == ["<pad>", "<unk>", "a"]
  back = input_pipeline.read_vocabulary_file(input_pipeline.vocabulary_file(vocab))
  assert back.tokens == vocab.tokens
  with pytest.raises(ValueError, match="min_count"):
    input_pipeline.build_word_vocabulary([["a"]], min_count=0)


def test_bucket_boundaries_parse_and_cover_the_longest():
  assert input_pipeline.parse_bucket_boundaries(" 8, 16,32 ") == (8, 16, 32)
  assert input_pipeline.parse_bucket_boundaries("") == ()
  for bad in ("16,8", "8,8", "0,4", "a,b"):
    with pytest.raises(ValueError, match="bucket_boundaries"):
      input_pipeline.parse_bucket_boundaries(bad)
  assert input_pipeline.bucket_steps((8, 16, 32), 10) == (8, 16)
  assert input_pipeline.bucket_steps((8, 16), 40) == (8, 16, 40)
  assert input_pipeline.bucket_steps((), 7) == (7,)
  assert list(input_pipeline.bucket_index([1, 8, 9, 16], (8, 16))) == [0, 0, 1, 1]
  with pytest.raises(ValueError, match="lengths"):
    input_pipeline.bucket_index([17], (8, 16))


def index_rows(lengths):
  """make_rows that records which examples a batch holds and its T."""
  def rows(indices, steps):
    assert all(lengths[i] <= steps for i in indices if i >= 0)
    return {"indices": np.asarray(indices), "steps": steps}
  return rows


LENGTHS = [3, 7, 1, 12, 5, 5, 9, 2, 16, 4, 8, 11, 6]


def test_bucketed_batches_hold_every_example_once_per_epoch():
  steps = input_pipeline.bucket_steps((4, 8), max(LENGTHS))      # (4, 8, 16)
  stream = input_pipeline.BucketedBatches(LENGTHS, steps, index_rows(LENGTHS), 3, seed=5)
  bucket = input_pipeline.bucket_index(LENGTHS, steps)
  assert stream.batches_per_epoch == 2 + 2 + 2   # buckets of 5, 4 and 4 examples
  epochs = []
  for _ in range(2):
    batches = [next(stream) for _ in range(stream.batches_per_epoch)]
    seen = np.concatenate([b["indices"] for b in batches])
    assert sorted(seen[seen >= 0]) == list(range(len(LENGTHS)))
    for b in batches:           # one bucket per batch, padded to its T
      real = b["indices"][b["indices"] >= 0]
      assert {steps[k] for k in bucket[real]} == {b["steps"]}
    epochs.append([tuple(b["indices"]) for b in batches])
  assert epochs[0] != epochs[1]   # reshuffled every epoch


def test_bucketed_batches_resume_and_are_deterministic_from_the_seed():
  steps = (4, 8, 16)

  def stream(seed=5):
    return input_pipeline.BucketedBatches(LENGTHS, steps, index_rows(LENGTHS), 3, seed)
  first = stream()
  expected = [tuple(next(first)["indices"]) for _ in range(10)]
  assert [tuple(next(stream())["indices"])] == expected[:1]
  resumed, rest = stream(), stream()
  for _ in range(4):
    next(rest)
  state = json.loads(json.dumps(rest.get_state()))
  resumed.set_state(state)
  assert [tuple(next(resumed)["indices"]) for _ in range(6)] == expected[4:]
  assert [tuple(b) for b in (next(stream(6))["indices"] for _ in range(6))] != expected[:6]
  with pytest.raises(ValueError, match="does not belong"):
    stream(seed=6).set_state(state)


def test_bucketed_eval_batches_hold_every_example_once():
  batches = input_pipeline.bucketed_eval_batches(LENGTHS, (4, 8, 16), index_rows(LENGTHS), 4)
  seen = np.concatenate([b["indices"] for b in batches])
  assert sorted(seen[seen >= 0]) == list(range(len(LENGTHS)))
  assert all(len(b["indices"]) == 4 for b in batches)


# ----------------------------------------------------------------------------
# Models and losses ignore padding.

def test_pooling_ignores_padding_steps():
  ys = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 3))
  lengths = jnp.array([2, 5])
  garbage = ys.at[0, 2:].set(100.0)
  for pooling in ("max", "mean"):
    clean = classifier.pool_over_time(ys, lengths, pooling)
    np.testing.assert_allclose(classifier.pool_over_time(garbage, lengths, pooling), clean)
  np.testing.assert_allclose(classifier.pool_over_time(ys, lengths, "mean")[0],
                             ys[0, :2].mean(0), rtol=1e-6)


@pytest.mark.parametrize("pooling", ["final", "max"])
def test_classifier_logits_do_not_depend_on_padding(pooling):
  encoder = layers.RecurrentEncoder(cell="lstm", hidden_size=4, bidirectional=True,
                                    vocab_size=10, embed_size=3)
  model = classifier.SequenceClassifier(encoder, num_outputs=2, pooling=pooling)
  inputs = jnp.array([[2, 3, 4, 0, 0, 0], [5, 6, 7, 8, 9, 2]])
  lengths = jnp.array([3, 6])
  params = model.init(jax.random.PRNGKey(1), inputs, lengths)
  garbage = inputs.at[0, 3:].set(7)
  np.testing.assert_allclose(model.apply(params, garbage, lengths),
                             model.apply(params, inputs, lengths), atol=1e-6)
  alone = model.apply(params, inputs[:1, :3], lengths[:1])
  np.testing.assert_allclose(model.apply(params, inputs, lengths)[:1], alone, atol=1e-6)


def test_sentiment_loss_ignores_padding_rows():
  logits = jnp.array([[2.0, -1.0], [0.5, 0.1], [9.0, -9.0]])
  batch = {"labels": jnp.array([0, 1, 0]), "weights": jnp.array([1.0, 1.0, 0.0])}
  value, sums = sentiment.loss(logits, batch)
  other_logits = logits.at[2].set(jnp.array([-9.0, 9.0]))
  value2, sums2 = sentiment.loss(other_logits, {**batch, "labels": jnp.array([0, 1, 1])})
  assert float(value) == pytest.approx(float(value2))
  assert {k: float(v) for k, v in sums.items()} == {k: float(v) for k, v in sums2.items()}
  assert float(sums["count"]) == 2 and float(sums["correct"]) == 1


def tagging_batch():
  return {"lengths": jnp.array([2, 3, 1]), "weights": jnp.array([1.0, 1.0, 0.0]),
          "tags": jnp.array([[1, 2, 0], [0, 0, 1], [2, 2, 2]]),
          "unseen": jnp.array([[True, False, False], [False, True, False],
                               [True, True, True]])}


def test_tagging_loss_ignores_padding_steps_and_rows():
  logits = jax.random.normal(jax.random.PRNGKey(0), (3, 3, 3))
  batch = tagging_batch()
  value, sums = tagging.loss(logits, batch)
  messy_logits = logits.at[0, 2].set(50.0).at[2].set(-50.0)
  messy = {**batch, "tags": batch["tags"].at[0, 2].set(2).at[2].set(1)}
  value2, sums2 = tagging.loss(messy_logits, messy)
  assert float(value) == pytest.approx(float(value2), rel=1e-6)
  for key in sums:
    assert float(sums[key]) == pytest.approx(float(sums2[key])), key
  assert float(sums["tokens"]) == 5 and float(sums["unseen"]) == 2
  predicted = jnp.argmax(logits, -1)
  hits = [(predicted[0, 0] == 1), (predicted[1, 1] == 0)]
  assert float(sums["correct_unseen"]) == sum(float(h) for h in hits)


def test_character_word_vector_does_not_depend_on_padding():
  encoder = char_encoder.CharWordEncoder(vocab_size=12, embed_size=3, hidden_size=4)
  short = jnp.array([[[2, 3, 4, 0], [5, 0, 0, 0]]])                  # [1, 2, 4]
  short_lengths = jnp.array([[3, 1]])
  params = encoder.init(jax.random.PRNGKey(0), short, short_lengths)
  alone = encoder.apply(params, short, short_lengths)                 # [1, 2, 8]
  # The same words in a batch with a longer word (W = 9), with garbage padding.
  wide = jnp.full((2, 3, 9), 11).at[0, 0, :3].set(jnp.array([2, 3, 4]))
  wide = wide.at[0, 1, :1].set(5).at[1, 2, :9].set(jnp.arange(2, 11))
  wide_lengths = jnp.array([[3, 1, 0], [0, 0, 9]])
  out = encoder.apply(params, wide, wide_lengths)
  assert out.shape == (2, 3, 8)
  np.testing.assert_allclose(out[0, :2], alone[0], atol=1e-6)


# ----------------------------------------------------------------------------
# The tasks on monkeypatched readers.

REVIEWS = {
    "train": [("a great great film", 1), ("an awful film", 0), ("great fun", 1),
              ("awful awful plot <br /> dull", 0), ("great", 1), ("dull film", 0)],
    "validation": [("great plot", 1), ("awful new film", 0)],
    "test": [("great new new film", 1), ("dull", 0), ("awful", 0)],
}


@pytest.fixture
def fake_reviews(monkeypatch):
  def read_split(name, split, data_dir=None):
    del name, data_dir
    return [sentiment_data.Example(t, y) for t, y in REVIEWS[split]]
  monkeypatch.setattr(sentiment.sentiment_data, "read_split", read_split)


def small_sentiment_config(**overrides):
  config = sentiment_config.get_config("rt")
  config.update(dict(min_count=2, max_len=3, truncation="keep_last",
                     bucket_boundaries="2", batch_size=2, eval_batch_size=2,
                     hidden_size=4, embed_size=3, **overrides))
  rules.validate(config)
  return config


def test_sentiment_task_vocabulary_stats_and_batches(fake_reviews):
  task = sentiment.build(small_sentiment_config())
  vocab = input_pipeline.read_vocabulary_file(task.run_files["vocabulary.txt"])
  assert vocab.tokens == ["<pad>", "<unk>", "great", "awful", "film", "dull"]
  stats = json.loads(task.run_files["data_stats.json"])
  assert stats["bucket_steps"] == [2, 3]
  # test: 'great new new film' -> the last 3: new new film (2 unknown of 3).
  assert stats["test"]["truncated_rate"] == pytest.approx(1 / 3)
  assert stats["test"]["unknown_rate"] == pytest.approx(2 / 5)
  assert stats["train"]["truncated_rate"] == pytest.approx(2 / 6)   # 4 and 5 tokens
  test_batches = task.eval_splits["test"]
  assert sum(float(b["weights"].sum()) for b in test_batches) == 3
  assert {b["inputs"].shape[1] for b in test_batches} == {2, 3}
  ids = [list(row[:n]) for b in test_batches for row, n, w in
         zip(b["inputs"], b["lengths"], b["weights"]) if w]
  assert [vocab.id_of("<unk>")] * 2 + [vocab.id_of("film")] in ids
  batch = next(task.train_batches)
  assert task.examples_in(batch) == int(batch["weights"].sum())


def test_sentiment_trains_and_writes_its_vocabulary(fake_reviews, tmp_path):
  config = small_sentiment_config(num_train_steps=4, eval_every_steps=2,
                                  log_every_steps=2, progress_bar=False)
  summary = train.train_and_evaluate(config, str(tmp_path))
  assert summary["metrics"]["test"]["examples"] == 3
  assert sentiment.run_vocabulary(str(tmp_path)).tokens[:2] == ["<pad>", "<unk>"]


SENTENCES = {
    "train": [(["the", "dog", "runs"], ["DET", "NOUN", "VERB"]),
              (["The", "cat", "sleeps", "."], ["DET", "NOUN", "VERB", "PUNCT"]),
              (["dogs", "run"], ["NOUN", "VERB"])],
    "validation": [(["the", "bird", "runs"], ["DET", "NOUN", "VERB"])],
    "test": [(["a", "cat", "sleeps", "!"], ["DET", "NOUN", "VERB", "PUNCT"]),
             (["extraordinarily"], ["ADV"])],
}


@pytest.fixture
def fake_treebank(monkeypatch):
  def read_tagging(treebank, split, data_dir=None):
    del treebank, data_dir
    return [ud.TaggedSentence(w, t) for w, t in SENTENCES[split]]
  monkeypatch.setattr(tagging.ud, "read_tagging", read_tagging)


def small_tagging_config(**overrides):
  config = tagging_config.get_config("ud_he")
  config.update(dict(max_word_len=10, bucket_boundaries="2", batch_size=2,
                     eval_batch_size=2, hidden_size=4, embed_size=3,
                     char_embed_size=3, char_hidden_size=2, **overrides))
  rules.validate(config)
  return config


def test_tagging_task_unseen_words_chars_and_tags(fake_treebank):
  task = tagging.build(small_tagging_config(lowercase=True))
  tags = task.run_files["tags.txt"].decode().split("\n")[:-1]
  assert tags == ["ADV", "DET", "NOUN", "PUNCT", "VERB"]   # all splits' tags
  stats = json.loads(task.run_files["data_stats.json"])
  # test: a, !, extraordinarily never occur in train (lower-cased); cat, sleeps do.
  assert stats["test"]["unseen_rate"] == pytest.approx(3 / 5)
  assert stats["test"]["truncated_word_rate"] == pytest.approx(1 / 5)
  batches = task.eval_splits["test"]
  assert sum(float(b["weights"].sum()) for b in batches) == 2
  long_word = [b for b in batches if b["lengths"][0] == 1 and b["weights"][0]][0]
  assert long_word["chars"].shape[2] == 10 and long_word["char_lengths"][0, 0] == 10
  assert long_word["unseen"][0, 0]


def test_tagging_trains_and_reports_unseen_accuracy(fake_treebank, tmp_path):
  config = small_tagging_config(num_train_steps=4, eval_every_steps=2,
                                log_every_steps=2, progress_bar=False)
  summary = train.train_and_evaluate(config, str(tmp_path))
  test = summary["metrics"]["test"]
  assert test["tokens"] == 5 and test["sentences"] == 2
  assert 0.0 <= test["accuracy_unseen"] <= 1.0
  assert (tmp_path / "characters.txt").exists()
