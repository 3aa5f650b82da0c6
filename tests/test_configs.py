"""experiments/configs/rules.py: every config key has a rule, every shipped
config keeps them, and bad values and relations are refused naming the key."""

import importlib
import math

import ml_collections
import pytest

import train
from experiments.configs import ptb as ptb_config
from experiments.configs import rules
from models import cells

# Every config module and the args its docstring names.
CONFIG_ARGS = {
    "adding": [None, "500"],
    "captioning": [None, "shapes", "shapes_attention", "digits", "digits_attention"],
    "addition": [None, "9"],
    "listops": [None, "lstm", "bilstm", "tree_rnn", "tree_lstm", "child_sum"],
    "music": [None, "tanh", "lstm", "gru", "tanh_large", "lstm_large", "gru_large"],
    "nmt": [None, "encdec", "encdec_rev", "attention", "luong"],
    "parse": [None, "listops", "ud_tr"],
    "ptb": [None, "small", "medium", "large", "char"],
    "reber": [None],
    "reversal": [None, "attention"],
    "sentiment": [None, "imdb", "rt", "rt_vectors"],
    "tagging": [None, "ud_he", "ud_tr"],
    "temporal_order": [None, "6a", "6b"],
}


def get_config(name: str, arg: str | None = None) -> ml_collections.ConfigDict:
  return importlib.import_module(f"experiments.configs.{name}").get_config(arg)


def with_values(config, **values) -> ml_collections.ConfigDict:
  """A plain copy of config with values set, whatever their type (a config
  read back from config.json is not type-checked either)."""
  fields = config.copy_and_resolve_references().to_dict()
  fields.update(values)
  return ml_collections.ConfigDict(fields)


def refusal(config) -> rules.ConfigError:
  with pytest.raises(rules.ConfigError) as caught:
    rules.validate(config)
  return caught.value


def test_every_config_module_is_listed():
  import os  # pylint: disable=g-import-not-at-top
  folder = os.path.dirname(rules.__file__)
  modules = {f[:-3] for f in os.listdir(folder) if f.endswith(".py")}
  assert modules - {"__init__", "base", "seq2seq_base", "rules"} == set(CONFIG_ARGS)


@pytest.mark.parametrize("name,arg", [(n, a) for n, args in CONFIG_ARGS.items()
                                      for a in args])
def test_shipped_configs_keep_every_rule(name, arg):
  config = get_config(name, arg)
  assert not set(config.keys()) - set(rules.RULES), "keys without a rule"
  rules.validate(config)
  train.validate_config(config)


def test_task_rules_name_known_tasks_and_keys():
  assert set(rules.TASK_RULES) <= set(rules.RULES["task"].choices)
  for task_rules in rules.TASK_RULES.values():
    assert set(task_rules) <= set(rules.RULES)


def test_private_name_lists_match_their_owners():
  assert set(rules.CELLS) == set(cells._FACTORIES)
  assert set(rules.RNN_ACTIVATIONS) == set(cells._ACTIVATIONS)
  assert set(rules.OPTIMIZERS) == set(train._OPTIMIZERS)
  assert set(rules.LR_SCHEDULES) == set(train._SCHEDULES)
  assert rules.RULES["variant"] is not rules.rules_for("ptb")["variant"]
  assert rules.rules_for("ptb")["variant"].choices == ptb_config.VARIANTS


def test_rules_describe_themselves():
  assert rules.describe("hidden_size") == "an integer >= 1"
  assert rules.describe("learning_rate") == "a finite number > 0"
  assert rules.describe("dropout_rate") == "a finite number in [0, 1)"
  assert rules.describe("lr_decay_factor") == "a finite number in (0, 1]"
  assert rules.describe("num_digits") == "an integer in [1, 9]"
  assert rules.describe("progress_bar") == "true or false"
  assert rules.describe("dataset") == "a non-empty string"
  assert rules.describe("cell") == "one of ['gru', 'lstm', 'rnn']"
  assert rules.describe("seq_len", "adding") == "an integer >= 2"
  assert rules.describe("no_such_key") == ""


# (config, key, bad value, the message's start). Each key of the task configs
# that the base config lacks, or whose rule is the task's own.
TASK_KEY_CASES = [
    ("adding", None, "seq_len", 1, "seq_len: expected an integer >= 2, got 1"),
    ("addition", None, "num_digits", 10, "num_digits: expected an integer in [1, 9]"),
    ("addition", None, "attention", "luong", "attention: unknown attention 'luong'"),
    ("addition", None, "bridge", "copyy", "bridge: unknown bridge 'copyy'"),
    ("addition", None, "embed_size", 0, "embed_size: expected an integer >= 1"),
    ("addition", None, "dropout_rate", 1.0, "dropout_rate: expected a finite number in [0, 1)"),
    ("addition", None, "max_decode_len", 0, "max_decode_len: expected an integer >= 1"),
    ("addition", None, "beam_size", 0, "beam_size: expected an integer >= 1"),
    ("addition", None, "length_alpha", -1.0, "length_alpha: expected a finite number >= 0"),
    ("addition", None, "solved_accuracy", -0.5, "solved_accuracy: expected"),
    ("addition", None, "input_feeding", "yes", "input_feeding: expected true or false"),
    ("reversal", None, "num_symbols", 27, "num_symbols: expected an integer in [2, 26]"),
    ("reversal", None, "max_len", 0, "max_len: expected an integer >= 1"),
    ("reversal", None, "length_buckets", "1-x", "length_buckets: length_buckets: expected"),
    ("reversal", None, "copy", 1, "copy: expected true or false, got 1"),
    ("reber", None, "max_len", 8, "max_len: expected an integer >= 9"),
    ("temporal_order", None, "variant", "6c", "variant: unknown variant '6c'"),
    ("temporal_order", None, "solved_max_error", 2.0, "solved_max_error: expected"),
    ("listops", None, "model", "gru", "model: unknown model 'gru'"),
    ("listops", None, "tree_form", "nary", "tree_form: unknown tree form 'nary'"),
    ("listops", None, "mlp_layers", -1, "mlp_layers: expected an integer >= 0"),
    ("listops", None, "mlp_size", -1, "mlp_size: expected an integer >= 0"),
    ("listops", None, "max_train_size", -1, "max_train_size: expected an integer >= 0"),
    ("listops", None, "pack_schedule", "no", "pack_schedule: expected true or false"),
    ("parse", None, "dataset", "ptb", "dataset: unknown dataset 'ptb'"),
    ("parse", None, "objective", "xent", "objective: unknown objective 'xent'"),
    ("parse", None, "gold_pairs", "some", "gold_pairs: unknown gold pairs rule"),
    ("parse", None, "beam_score", "max", "beam_score: unknown beam score 'max'"),
    ("parse", None, "margin", -1.0, "margin: expected a finite number >= 0"),
    ("parse", None, "max_length", 0, "max_length: expected an integer >= 1"),
    ("ptb", None, "level", "byte", "level: unknown level 'byte'"),
    ("ptb", None, "embed_size", -1, "embed_size: expected an integer >= 0"),
    ("ptb", None, "loss_over_time", "max", "loss_over_time: unknown loss over time"),
    ("ptb", None, "unroll", 0, "unroll: expected an integer >= 1"),
    ("ptb", None, "init_scale", -0.1, "init_scale: expected a finite number >= 0"),
    ("ptb", None, "variant", "huge", "variant: unknown variant 'huge'"),
    ("ptb", None, "train_tokens", -1, "train_tokens: expected an integer >= 0"),
    ("ptb", None, "num_epochs", 0, "num_epochs: expected an integer >= 1"),
    ("ptb", None, "text_feature", "", "text_feature: expected a non-empty string"),
    ("ptb", None, "tie_embeddings", "no", "tie_embeddings: expected true or false"),
    ("nmt", None, "vocab_size", 4, "vocab_size: expected an integer >= 5"),
    ("nmt", None, "max_tokens", 0, "max_tokens: expected an integer >= 1"),
    ("nmt", None, "variant", "rnnsearch", "variant: unknown variant 'rnnsearch'"),
    ("nmt", None, "dataset", "", "dataset: expected a non-empty string"),
    ("nmt", None, "source_feature", "", "source_feature: expected a non-empty string"),
    ("nmt", None, "test_split", 3, "test_split: expected a non-empty string, got 3"),
    ("nmt", None, "bleu_max_sentences", -1, "bleu_max_sentences: expected an integer >= 0"),
    ("nmt", None, "data_dir", None, "data_dir: expected a string, got None"),
    ("music", None, "time_step", "sixteenth", "time_step: unknown"),
    ("captioning", None, "decoder", "lstm", "decoder: unknown"),
    ("captioning", None, "conv_channels", "16,0", "conv_channels: expected positive"),
    ("captioning", None, "attention_penalty", -1.0, "attention_penalty: expected a finite"),
    ("captioning", None, "image_size", -2, "image_size: expected an integer >= 0"),
    ("captioning", None, "dataset", "mscoco", "dataset: unknown"),
    ("music", None, "transpose", "d", "transpose: unknown"),
    ("sentiment", "rt", "word_vectors", "glove", "word_vectors: unknown"),
    ("sentiment", "rt", "word_vectors_window", 0, "word_vectors_window: expected an integer >= 1"),
    ("sentiment", "rt", "freeze_embeddings", "yes", "freeze_embeddings: expected true or false"),
]


@pytest.mark.parametrize("name,arg,key,value,start", TASK_KEY_CASES,
                         ids=[f"{c[0]}-{c[2]}" for c in TASK_KEY_CASES])
def test_task_key_bad_values_name_the_key(name, arg, key, value, start):
  error = refusal(with_values(get_config(name, arg), **{key: value}))
  assert error.key == key
  assert str(error).startswith(start), str(error)
  assert "\n" not in str(error)


@pytest.mark.parametrize("key,value,start", [
    ("hidden_size", True, "hidden_size: expected an integer >= 1, got True"),
    ("hidden_size", 8.0, "hidden_size: expected an integer >= 1, got 8.0"),
    ("learning_rate", "fast", "learning_rate: expected a finite number > 0"),
    ("learning_rate", math.nan, "learning_rate: expected a finite number > 0, got nan"),
    ("forget_bias", math.inf, "forget_bias: expected a finite number, got inf"),
    ("progress_bar", 0, "progress_bar: expected true or false, got 0"),
    ("best_metric", "valid/mse", "best_metric: expected 'SPLIT/METRIC:min'"),
    ("best_metric", "mse:min", "best_metric: expected 'SPLIT/METRIC:min'"),
])
def test_types_are_checked(key, value, start):
  error = refusal(with_values(get_config("adding"), **{key: value}))
  assert error.key == key and str(error).startswith(start), str(error)


def test_float_keys_take_integers_and_good_formats_pass():
  rules.validate(with_values(get_config("adding"), learning_rate=1, forget_bias=0,
                             best_metric="valid/mse:min"))
  rules.validate(with_values(get_config("reversal"), length_buckets="1-6,7-12"))
  rules.validate(with_values(get_config("reversal"), length_buckets=""))


@pytest.mark.parametrize("name,arg,values,key,fragment", [
    ("adding", None, dict(eval_every_steps=30, log_every_steps=20),
     "eval_every_steps", "must be a multiple of log_every_steps (20)"),
    ("adding", None, dict(num_train_steps=0, max_train_examples=0),
     "num_train_steps", "set a positive step budget or max_train_examples"),
    ("nmt", None, dict(bridge="copy", bidirectional=True),
     "bridge", "'copy' needs a unidirectional encoder"),
    ("nmt", "encdec", dict(input_feeding=True),
     "input_feeding", "got attention='none'"),
    ("nmt", None, dict(attention="dot", bidirectional=True),
     "attention", "'dot' needs memory width == hidden_size"),
    ("ptb", None, dict(tie_embeddings=True, embed_size=100),
     "tie_embeddings", "needs embed_size == hidden_size"),
])
def test_relations_name_the_key(name, arg, values, key, fragment):
  error = refusal(with_values(get_config(name, arg), **values))
  assert error.key == key and fragment in str(error), str(error)


def test_tied_embeddings_of_hidden_size_pass():
  rules.validate(with_values(get_config("ptb"), tie_embeddings=True, embed_size=0))


def test_derived_budget_names_its_source():
  """A batch too large for one step per epoch names steps_per_epoch (and how
  it is derived), not the eval cadence derived from it."""
  config = get_config("ptb")
  config.batch_size = 10**6
  error = refusal(config)
  assert error.key == "steps_per_epoch"
  assert "lower batch_size or seq_len" in str(error)


def test_a_key_without_a_rule_is_refused():
  error = refusal(with_values(get_config("adding"), hidden_sizes=8))
  assert error.key == "hidden_sizes"
  assert "no rule for this config key" in str(error)


def test_unknown_keys_come_before_bad_values():
  error = refusal(with_values(get_config("adding"), hidden_size=0, extra=1))
  assert error.key == "extra"


def test_train_validate_config_uses_the_rules(tmp_path):
  config = with_values(get_config("adding"), eval_batch_size=0)
  with pytest.raises(ValueError, match="eval_batch_size: expected an integer >= 1"):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()
