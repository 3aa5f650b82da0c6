"""Sentiment (N -> 1) and tagging (N -> N) on text: vocabularies, length
buckets (every example once per epoch, resumable, deterministic), pooling and
losses that ignore padding, character word vectors independent of padding,
per-class precision and recall from confusion counts, the tasks built from
monkeypatched readers, and the evaluate and confusion tools on a tiny run."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags

import input_pipeline
import train
from corpora import sentiment as sentiment_data
from corpora import ud
from experiments import classify
from experiments import confusion as confusion_tool
from experiments import evaluate as evaluate_tool
from experiments.configs import rules
from experiments.configs import sentiment as sentiment_config
from experiments.configs import tagging as tagging_config
from models import char_encoder
from models import classifier
from models import layers
from tasks import class_metrics
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
  assert sums.keys() == sums2.keys()
  for key in sums:
    np.testing.assert_array_equal(sums[key], sums2[key], err_msg=key)
  assert float(sums["count"]) == 2 and float(sums["correct"]) == 1
  # gold 0 predicted 0, gold 1 predicted 0; the padding row nowhere.
  np.testing.assert_array_equal(sums["confusion"], [[1, 0], [1, 0]])
  metrics = sentiment.summarize(jax.device_get(sums))
  assert metrics["precision/negative"] == 0.5 and metrics["recall/negative"] == 1.0
  assert metrics["precision/positive"] == 0.0 and metrics["recall/positive"] == 0.0
  assert "precision/negative" not in sentiment.summarize(jax.device_get(sums),
                                                         per_class=False)


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
    np.testing.assert_allclose(sums[key], sums2[key], rtol=1e-6, err_msg=key)
  assert float(sums["tokens"]) == 5 and float(sums["unseen"]) == 2
  predicted = jnp.argmax(logits, -1)
  hits = [(predicted[0, 0] == 1), (predicted[1, 1] == 0)]
  assert float(sums["correct_unseen"]) == sum(float(h) for h in hits)
  # The confusion counts, by a loop over the real tokens.
  expected = np.zeros((3, 3))
  for b, length in enumerate([2, 3]):
    for t in range(length):
      expected[int(batch["tags"][b, t]), int(predicted[b, t])] += 1
  np.testing.assert_array_equal(sums["confusion"], expected)
  assert float(np.trace(expected)) == float(sums["correct"])


def test_per_class_precision_recall_f1():
  #              predicted: A  B  C        gold:
  matrix = np.array([[3, 1, 0],          # A: 4
                     [2, 2, 0],          # B: 4
                     [0, 0, 0]])         # C: none, never predicted
  numbers = class_metrics.per_class(matrix)
  np.testing.assert_allclose(numbers.precision, [3 / 5, 2 / 3, 0])
  np.testing.assert_allclose(numbers.recall, [3 / 4, 2 / 4, 0])
  np.testing.assert_allclose(numbers.f1[0], 2 * 0.6 * 0.75 / 1.35)
  metrics = class_metrics.metrics(matrix, ["A", "B", "C"])
  assert metrics["precision/B"] == pytest.approx(2 / 3)
  assert metrics["recall/C"] == 0.0
  assert metrics["macro_f1"] == pytest.approx((numbers.f1[0] + numbers.f1[1]) / 2)
  assert all(isinstance(v, float) for v in metrics.values())
  np.testing.assert_allclose(class_metrics.row_normalised(matrix),
                             [[0.75, 0.25, 0], [0.5, 0.5, 0], [0, 0, 0]])
  table = class_metrics.markdown_table(matrix, ["A", "B", "C"])
  assert "| A | 4 | 5 | 0.6000 | 0.7500 |" in table
  assert "| micro (accuracy) | 8 | 8 | 0.6250 |" in table
  with pytest.raises(ValueError, match="names"):
    class_metrics.metrics(matrix, ["A", "B"])
  with pytest.raises(ValueError, match="confusion"):
    class_metrics.per_class(np.zeros((2, 3)))


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


def read_fake_reviews(name, split, data_dir=None):
  """corpora.sentiment.read_split's stand-in: REVIEWS."""
  del name, data_dir
  return [sentiment_data.Example(t, y) for t, y in REVIEWS[split]]


@pytest.fixture
def fake_reviews(monkeypatch):
  monkeypatch.setattr(sentiment.sentiment_data, "read_split", read_fake_reviews)


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
  assert {"precision/negative", "recall/positive", "macro_f1"} <= set(
      summary["metrics"]["test"])
  vocab = classify.read_run_vocabulary(str(tmp_path), sentiment.VOCABULARY_FILE)
  assert vocab.tokens[:2] == ["<pad>", "<unk>"]


SENTENCES = {
    "train": [(["the", "dog", "runs"], ["DET", "NOUN", "VERB"]),
              (["The", "cat", "sleeps", "."], ["DET", "NOUN", "VERB", "PUNCT"]),
              (["dogs", "run"], ["NOUN", "VERB"])],
    "validation": [(["the", "bird", "runs"], ["DET", "NOUN", "VERB"])],
    "test": [(["a", "cat", "sleeps", "!"], ["DET", "NOUN", "VERB", "PUNCT"]),
             (["extraordinarily"], ["ADV"])],
}


def read_fake_treebank(treebank, split, data_dir=None):
  """corpora.ud.read_tagging's stand-in: SENTENCES."""
  del treebank, data_dir
  return [ud.TaggedSentence(w, t) for w, t in SENTENCES[split]]


@pytest.fixture
def fake_treebank(monkeypatch):
  monkeypatch.setattr(tagging.ud, "read_tagging", read_fake_treebank)


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


TAGS = ["ADV", "DET", "NOUN", "PUNCT", "VERB"]


def test_tagging_trains_and_reports_unseen_accuracy_and_per_tag_metrics(
    fake_treebank, tmp_path, capsys):
  config = small_tagging_config(num_train_steps=4, eval_every_steps=2,
                                log_every_steps=2, progress_bar=False,
                                direction="forward", output_delay=1)
  summary = train.train_and_evaluate(config, str(tmp_path))
  test = summary["metrics"]["test"]
  assert test["tokens"] == 5 and test["sentences"] == 2
  assert 0.0 <= test["accuracy_unseen"] <= 1.0
  assert (tmp_path / "characters.txt").exists()
  assert {f"{m}/{tag}" for m in ("precision", "recall", "f1") for tag in TAGS} <= set(test)
  for line in (tmp_path / "metrics.jsonl").read_text().splitlines():
    assert all(not isinstance(v, (dict, list)) for v in json.loads(line).values())

  # experiments.evaluate re-evaluates the run to the same metrics.
  capsys.readouterr()
  evaluate_tool.evaluate(str(tmp_path), {})
  records = [json.loads(line) for line in
             (tmp_path / "evaluations.jsonl").read_text().splitlines()]
  evaluated = {r["split"]: r for r in records}
  assert evaluated["test"]["precision/NOUN"] == pytest.approx(test["precision/NOUN"])
  assert evaluated["test"]["accuracy"] == pytest.approx(test["accuracy"])

  # experiments.confusion: the matrix, the table, the PNG.
  out = tmp_path / "confusion.png"
  capsys.readouterr()
  result = confusion_tool.run(str(tmp_path), "test", None, False, str(out))
  assert result.names == TAGS and result.matrix.shape == (5, 5)
  assert result.matrix.sum() == 5
  assert np.trace(result.matrix) / 5 == pytest.approx(test["accuracy"])
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  printed = capsys.readouterr().out
  assert printed.startswith("| class | gold | predicted | precision | recall | F1 |")
  assert "| NOUN | 1 |" in printed

  # Its user errors: one line, naming the flag or file.
  def errors(*argv):
    flag_values = flags.FlagValues()
    confusion_tool.define_flags(flag_values)
    flag_values(["confusion", *argv])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
      confusion_tool.run_flags(["confusion"], flag_values)
    return exit_.value.code, capsys.readouterr().err.splitlines()
  assert errors(f"--workdir={tmp_path}", "--split=train") == (
      2, ["error: --split: unknown split 'train'; known splits are ['valid', 'test']"])
  assert errors(f"--workdir={tmp_path}", "--best", "--step=4") == (
      2, ["error: --step: give --step or --best, not both"])
  assert errors("--workdir=") == (
      2, ["error: --workdir: empty; give a directory (--workdir=. for the current one)"])
  assert errors(f"--workdir={tmp_path}", f"--out={tmp_path}/no/c.png") == (
      1, [f"error: {tmp_path}/no: No such directory for --out"])
  assert errors(f"--workdir={tmp_path / 'none'}") == (
      2, [f"error: workdir: {tmp_path / 'none'} has no config.json (is it a "
          f"training workdir?)"])
  other = tmp_path / "other"
  other.mkdir()
  (other / "config.json").write_text('{"task": "adding"}')
  assert errors(f"--workdir={other}") == (
      2, [f"error: --workdir: {other} is a run of task 'adding'; this tool "
          f"reads tagging and sentiment runs"])


def test_variational_dropout_keys_reach_the_recurrent_layers():
  """input_/recurrent_dropout_rate act in training (a new mask per rng) and
  vanish at evaluation, where the model equals one built without them."""
  plain = small_sentiment_config(dropout_rate=0.0)
  varied = small_sentiment_config(dropout_rate=0.0, input_dropout_rate=0.3,
                                  recurrent_dropout_rate=0.3)
  ids = jnp.asarray(np.random.default_rng(0).integers(2, 6, (3, 5)))
  lengths = jnp.asarray([5, 3, 1])
  model = sentiment.build_model(varied, vocab_size=6)
  params = model.init(jax.random.PRNGKey(0), ids, lengths)
  evaluate = sentiment.build_model(plain, vocab_size=6).apply(params, ids, lengths)
  np.testing.assert_array_equal(model.apply(params, ids, lengths), evaluate)

  def trained(seed):
    return model.apply(params, ids, lengths, deterministic=False,
                       rngs={"dropout": jax.random.PRNGKey(seed)})
  assert not np.allclose(trained(1), trained(2))
  assert not np.allclose(trained(1), evaluate)
