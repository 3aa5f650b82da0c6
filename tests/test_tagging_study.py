"""The bidirectional study's taggers (Schuster & Paliwal 1997, section IV):
forward, backward, delayed and bidirectional word RNNs give one output per
word, see only the words they should (perturbation tests), ignore padding,
and the study's variants have equal word-level parameter counts; the
configs keep their rules."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import rules
from experiments.configs import tagging as tagging_config
from models import tagger
from tasks import tagging

NUM_WORDS, NUM_CHARS, NUM_TAGS = 20, 12, 5
B, T, W = 2, 9, 4
LENGTH = 7           # of row 0; row 1 is full (T)


def small_config(direction="bidirectional", output_delay=0):
  config = tagging_config.get_config("ud_he")
  config.update(dict(hidden_size=5, embed_size=3, char_embed_size=3,
                     char_hidden_size=2, direction=direction,
                     output_delay=output_delay))
  rules.validate(config)
  return config


def inputs():
  """Word ids [B, T], lengths [B], chars [B, T, W], char_lengths [B, T]."""
  rng = np.random.default_rng(0)
  words = rng.integers(2, NUM_WORDS, (B, T)).astype(np.int32)
  chars = rng.integers(1, NUM_CHARS, (B, T, W)).astype(np.int32)
  char_lengths = rng.integers(1, W + 1, (B, T)).astype(np.int32)
  words[0, LENGTH:] = 0
  chars[0, LENGTH:] = 0
  char_lengths[0, LENGTH:] = 0
  return (jnp.asarray(words), jnp.array([LENGTH, T]), jnp.asarray(chars),
          jnp.asarray(char_lengths))


class JittedModel:
  """A model whose apply is compiled once (the tests call it many times)."""

  def __init__(self, model):
    self.module = model
    self.apply = jax.jit(model.apply)


def model_and_params(direction, output_delay=0):
  return _model_and_params(direction, output_delay)


@functools.lru_cache(maxsize=None)
def _model_and_params(direction, output_delay):
  model = tagging.build_model(small_config(direction, output_delay),
                              NUM_WORDS, NUM_CHARS, NUM_TAGS)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), *inputs())
  if output_delay:   # a non-zero end input, so that it matters
    params = jax.tree_util.tree_map(lambda x: x, params)
    params["params"]["end_input"] = jnp.linspace(-1.0, 1.0, params["params"][
        "end_input"].shape[0])
  return JittedModel(model), params


def perturbed(position, row=0):
  """inputs() with the word at `position` of `row` replaced (id and chars)."""
  words, lengths, chars, char_lengths = inputs()
  words = words.at[row, position].set((words[row, position] + 5) % NUM_WORDS)
  chars = chars.at[row, position].set((chars[row, position] + 3) % NUM_CHARS + 1)
  return words, lengths, chars, char_lengths


VARIANTS = [("forward", 0), ("backward", 0), ("forward", 1), ("forward", 2),
            ("bidirectional", 0)]


@pytest.mark.parametrize("direction,delay", VARIANTS)
def test_one_output_per_word_and_padding_and_batch_ignored(direction, delay):
  model, params = model_and_params(direction, delay)
  words, lengths, chars, char_lengths = inputs()
  logits = model.apply(params, words, lengths, chars, char_lengths)
  assert logits.shape == (B, T, NUM_TAGS)
  # Garbage in row 0's padding words and another row 1 change none of row
  # 0's logits on its words (same shapes: the jitted apply compiles once).
  garbage = model.apply(params, words.at[0, LENGTH:].set(3).at[1].set(4),
                        lengths.at[1].set(2), chars.at[0, LENGTH:].set(4),
                        char_lengths.at[0, LENGTH:].set(2))
  np.testing.assert_allclose(garbage[0, :LENGTH], logits[0, :LENGTH], atol=1e-5)


def changes(model, params, position, row=0):
  """|logits change| per word [T] of `row` when the word at `position` changes."""
  base = model.apply(params, *inputs())
  other = model.apply(params, *perturbed(position, row))
  return np.max(np.abs(np.asarray(other - base)[row]), axis=-1)


@pytest.mark.parametrize("delay", [0, 1, 2])
def test_delayed_forward_output_sees_exactly_d_words_ahead(delay):
  model, params = model_and_params("forward", delay)
  word = 2
  # The output for word t is read at step t + d: word t + d matters, t + d + 1 not.
  assert changes(model, params, word + delay)[word] > 1e-4
  assert changes(model, params, word + delay + 1)[word] < 1e-6
  # Past the sentence end: word L - 1 is tagged after reading d end inputs,
  # and still sees the whole sentence.
  assert changes(model, params, 0)[LENGTH - 1] > 1e-4


def test_delayed_last_words_read_the_end_input():
  model, params = model_and_params("forward", 2)
  words, lengths, chars, char_lengths = inputs()
  logits = model.apply(params, words, lengths, chars, char_lengths)
  other = jax.tree_util.tree_map(lambda x: x, params)
  other["params"]["end_input"] = -params["params"]["end_input"]
  moved = np.abs(np.asarray(model.apply(other, words, lengths, chars, char_lengths)
                            - logits)).max(-1)
  assert np.all(moved[0, :LENGTH - 2] < 1e-6)   # tagged before the end
  assert np.all(moved[0, LENGTH - 2:LENGTH] > 1e-4)   # the last d words


def test_backward_output_does_not_see_earlier_words():
  model, params = model_and_params("backward")
  word = 3
  assert changes(model, params, word - 1)[word] < 1e-6
  assert changes(model, params, word)[word] > 1e-4
  assert changes(model, params, LENGTH - 1)[word] > 1e-4
  assert np.all(changes(model, params, word)[word + 1:LENGTH] < 1e-6)


def test_forward_and_bidirectional_dependencies():
  forward, forward_params = model_and_params("forward")
  assert changes(forward, forward_params, 4)[3] < 1e-6
  assert changes(forward, forward_params, 0)[3] > 1e-4
  both, both_params = model_and_params("bidirectional")
  assert changes(both, both_params, 4)[3] > 1e-4
  assert changes(both, both_params, 0)[3] > 1e-4


def test_output_delay_only_forward():
  config = small_config("forward", 1)
  config.direction = "bidirectional"
  with pytest.raises(rules.ConfigError, match="output_delay"):
    rules.validate(config)
  config.direction = "backward"
  with pytest.raises(rules.ConfigError, match="output_delay"):
    rules.validate(config)
  model = tagger.WordCharTagger(
      vocab_size=NUM_WORDS, embed_size=3,
      char_encoder=tagging.build_model(small_config(), NUM_WORDS, NUM_CHARS,
                                       NUM_TAGS).char_encoder,
      encoder=tagging.build_model(small_config(), NUM_WORDS, NUM_CHARS,
                                  NUM_TAGS).encoder,
      num_outputs=NUM_TAGS, direction="forward")
  with pytest.raises(ValueError, match="direction"):   # a bidirectional encoder
    model.init(jax.random.PRNGKey(0), *inputs())


def test_old_configs_without_direction_read_bidirectional():
  config = small_config()
  del config["direction"]
  config.bidirectional = False
  assert tagging.word_direction(config) == "forward"
  del config["bidirectional"]
  assert tagging.word_direction(config) == "bidirectional"


# Vocabulary sizes of the treebanks' training splits (docs/results/text_tasks.md):
# words seen once + <pad>, <unk>; characters roughly; tags.
TREEBANK_SIZES = {"ud_he": (15_629, 100, 15), "ud_tr": (18_462, 120, 14)}


@pytest.mark.parametrize("treebank", sorted(TREEBANK_SIZES))
def test_study_variants_have_equal_parameter_counts(treebank):
  sizes = TREEBANK_SIZES[treebank]
  counts = {}
  for variant in tagging_config.STUDY_VARIANTS:
    config = tagging_config.get_config(f"{treebank}_study_{variant}")
    rules.validate(config)
    counts[variant] = tagging.model_parameter_counts(config, *sizes)
  reference = counts["bidirectional"]
  for variant, count in counts.items():
    assert abs(count.word_level / reference.word_level - 1) < 0.10, (variant, count)
    assert abs(count.total / reference.total - 1) < 0.10, (variant, count)
  # Each direction of the bidirectional net is narrower than a one-way net.
  study = tagging_config.STUDY_HIDDEN_SIZES
  assert study["bidirectional"] < study["forward"] == study["backward"]


def test_every_config_arg_keeps_the_rules():
  for arg in tagging_config.config_args():
    config = tagging_config.get_config(arg)
    rules.validate(config)
    assert config.variant == arg
  with pytest.raises(ValueError, match="config arg"):
    tagging_config.get_config("ud_he_study_delay9")
