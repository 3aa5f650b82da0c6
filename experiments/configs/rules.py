"""The rules of every config key: type, range, choices, and relations between keys.

RULES says, in one place per key, what each key of the configs in
experiments/configs/ accepts; TASK_RULES replaces a key's rule for the one
task that reads it differently (`variant`, `dataset`, `seq_len`, ...).
`validate(config)` checks every key of a config against its rule, then the
relations between keys (RELATIONS), and raises ConfigError (a ValueError)
naming the key, what it accepts and what it got:

  hidden_size: expected an integer >= 1, got 0
  cell: unknown cell 'lstn'; known cells are ['gru', 'lstm', 'rnn']
  eval_every_steps (30) must be a multiple of log_every_steps (20)

A key without a rule is refused too, so that no key goes unchecked; a new
config key needs a row here (tests/test_configs.py checks every config).
`train.validate_config` calls `validate` before anything is written.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Callable

import input_pipeline
import precision
import replicas
import tasks
from corpora import captions as caption_corpus
from corpora import music as music_corpus
from corpora import sentiment as sentiment_corpus
from corpora import ud as ud_corpus
from experiments.configs import nmt as nmt_config
from experiments.configs import ptb as ptb_config
from experiments.configs import tagging as tagging_config
from models import captioner
from models import classifier
from models import seq2seq
from models import tagger
from models import tree_parser
from tasks import captioning as captioning_task
from tasks import listops as listops_task
from tasks import parse as parse_task
from tasks import ptb as ptb_task
from tasks import seq2seq as seq2seq_task
from tasks import temporal_order as temporal_order_task

# Names owned by modules that keep them private (models/cells.py, train.py);
# tests/test_configs.py checks that these lists match them.
CELLS = ("gru", "lstm", "rnn")
RNN_ACTIVATIONS = ("relu", "tanh")
OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop")
LR_SCHEDULES = ("constant", "cosine", "step")
TEXT_LEVELS = ("word", "char")

# The shortest string of the embedded Reber grammar (tasks/reber.py): with a
# smaller max_len no string fits and batch generation never ends.
SHORTEST_REBER_STRING = 9


class ConfigError(ValueError):
  """A config value that its rule, or a relation between keys, refuses."""

  def __init__(self, key: str, message: str):
    super().__init__(message)
    self.key = key


@dataclasses.dataclass(frozen=True)
class Rule:
  """What one config key accepts.

  Attributes:
    type: int, float, bool or str. A float key takes an int too; a bool is
      never a number, and a float is finite.
    minimum: inclusive lower bound (numbers).
    maximum: inclusive upper bound.
    above: exclusive lower bound.
    below: exclusive upper bound.
    choices: the allowed values.
    nonempty: a str key refuses ''.
    check: value -> None, raising ValueError with the reason, for formats that
      bounds and choices cannot say (e.g. best_metric).
    noun: what a value is called in "unknown NOUN 'x'; known NOUNs are [...]"
      (default: the key, with spaces for underscores).
    hint: appended to the message when a value is refused.
  """
  type: type
  minimum: float | None = None
  maximum: float | None = None
  above: float | None = None
  below: float | None = None
  choices: tuple[Any, ...] | None = None
  nonempty: bool = False
  check: Callable[[Any], None] | None = None
  noun: str = ""
  hint: str = ""

  def describe(self) -> str:
    """What the rule accepts, e.g. 'an integer >= 1', 'a number in [0, 1)'."""
    if self.choices is not None:
      return f"one of {list(self.choices)}"
    kind = {int: "an integer", float: "a finite number", bool: "true or false",
            str: "a non-empty string" if self.nonempty else "a string"}[self.type]
    bounds = _describe_bounds(self)
    return f"{kind} {bounds}" if bounds else kind

  def refusal(self, key: str, value: Any) -> str | None:
    """Why `value` breaks the rule, as a message naming `key`; None if it doesn't."""
    if not _has_type(value, self.type):
      return self._expected(key, value)
    if self.choices is not None and value not in self.choices:
      noun = self.noun or key.replace("_", " ")
      return (f"{key}: unknown {noun} {value!r}; known {noun}s are "
              f"{list(self.choices)}{self._hint()}")
    if self.type in (int, float) and not _within_bounds(self, value):
      return self._expected(key, value)
    if self.nonempty and not value:
      return self._expected(key, value)
    if self.check is not None:
      try:
        self.check(value)
      except ValueError as e:
        return f"{key}: {e}{self._hint()}"
    return None

  def _expected(self, key: str, value: Any) -> str:
    return f"{key}: expected {self.describe()}, got {value!r}{self._hint()}"

  def _hint(self) -> str:
    return f" ({self.hint})" if self.hint else ""


def _has_type(value: Any, kind: type) -> bool:
  if kind is bool:
    return isinstance(value, bool)
  if isinstance(value, bool):
    return False
  if kind is int:
    return isinstance(value, int)
  if kind is float:
    return isinstance(value, (int, float)) and math.isfinite(value)
  return isinstance(value, kind)


def _within_bounds(rule: Rule, value: float) -> bool:
  return ((rule.minimum is None or value >= rule.minimum)
          and (rule.maximum is None or value <= rule.maximum)
          and (rule.above is None or value > rule.above)
          and (rule.below is None or value < rule.below))


def _describe_bounds(rule: Rule) -> str:
  low = (f"[{rule.minimum:g}" if rule.minimum is not None else
         f"({rule.above:g}" if rule.above is not None else None)
  high = (f"{rule.maximum:g}]" if rule.maximum is not None else
          f"{rule.below:g})" if rule.below is not None else None)
  if low and high:
    return f"in {low}, {high}"
  if low:
    return f"{'>=' if low[0] == '[' else '>'} {low[1:]}"
  if high:
    return f"{'<=' if high[-1] == ']' else '<'} {high[:-1]}"
  return ""


def check_best_metric(spec: str) -> None:
  """'' or 'SPLIT/METRIC:min|max' (the form train.parse_best_metric reads)."""
  if spec and not re.fullmatch(r"[^/:]+/[^:]+:(min|max)", spec):
    raise ValueError(f"expected 'SPLIT/METRIC:min' or 'SPLIT/METRIC:max' (e.g. "
                     f"'valid/perplexity:min'), got {spec!r}")


def check_length_buckets(spec: str) -> None:
  """'auto', '' or ranges like '1-6,7-12' (tasks/seq2seq.py)."""
  if spec != "auto":
    seq2seq_task.parse_length_buckets(spec)


def check_bucket_boundaries(spec: str) -> None:
  """'' or strictly increasing lengths like '32,64,128' (input_pipeline.py)."""
  input_pipeline.parse_bucket_boundaries(spec)


def _count(minimum: int = 0, hint: str = "") -> Rule:
  return Rule(int, minimum=minimum, hint=hint)


def _fraction(**bounds) -> Rule:
  return Rule(float, **bounds)


def _flag() -> Rule:
  return Rule(bool)


def _text(nonempty: bool = False) -> Rule:
  return Rule(str, nonempty=nonempty)


# Every key of every config, in the order they are checked (a key others are
# derived from comes before them, so its message is the one shown).
RULES: dict[str, Rule] = {
    # What to train.
    "task": Rule(str, choices=tuple(tasks.names())),
    "variant": _text(),
    "seed": _count(),
    "data_seed": _count(),
    # Batches, and the budgets in epochs that ptb derives its step counts
    # from (so checked before those).
    "batch_size": _count(1),
    "seq_len": _count(1),
    "train_tokens": _count(hint="0: not checked"),
    "num_epochs": _count(1),
    "lr_decay_start_epoch": _count(),
    "steps_per_epoch": _count(1, hint="it is (train_tokens // batch_size - 1) // "
                              "seq_len: lower batch_size or seq_len; with "
                              "train_tokens=0 set it by hand"),
    # Data.
    "dataset": _text(nonempty=True),
    "data_dir": _text(),
    "level": Rule(str, choices=TEXT_LEVELS),
    "text_feature": _text(nonempty=True),
    "source_feature": _text(nonempty=True),
    "target_feature": _text(nonempty=True),
    "train_split": _text(nonempty=True),
    "valid_split": _text(nonempty=True),
    "test_split": _text(nonempty=True),
    "vocab_size": _count(5, hint="sentencepiece needs room beyond its 4 special "
                         "pieces"),
    "max_tokens": _count(1),
    "max_train_pairs": _count(hint="0: all"),
    "max_eval_pairs": _count(hint="0: all"),
    "max_train_size": _count(hint="0: all"),
    "max_eval_size": _count(hint="0: all"),
    "max_length": _count(1),
    "max_len": _count(1),
    "num_digits": Rule(int, minimum=1, maximum=9),
    "num_symbols": Rule(int, minimum=2, maximum=26),
    "copy": _flag(),
    "length_buckets": Rule(str, check=check_length_buckets),
    "tree_form": Rule(str, choices=listops_task.TREE_FORMS),
    "pack_schedule": _flag(),
    "lowercase": _flag(),
    "min_count": _count(1),
    "max_vocab_size": _count(hint="0: no cap; else >= 3 (with <pad> and <unk>)"),
    "truncation": Rule(str, choices=input_pipeline.TRUNCATIONS),
    "bucket_boundaries": Rule(str, check=check_bucket_boundaries),
    "max_word_len": _count(1),
    "word_vectors": Rule(str, choices=("", "ppmi_svd"), hint="'': random embeddings"),
    "word_vectors_window": _count(1),
    "freeze_embeddings": _flag(),
    "decoder": Rule(str, choices=captioner.DECODERS),
    "conv_channels": Rule(str, check=captioning_task.parse_channels),
    "attention_penalty": Rule(float, minimum=0),
    "image_size": _count(hint="0: as stored; else resized to S x S"),
    "time_step": Rule(str, choices=tuple(music_corpus.STEPS)),
    "transpose": Rule(str, choices=music_corpus.TRANSPOSITIONS),
    # Model.
    "model": Rule(str, choices=(*listops_task.SEQUENCE_MODELS,
                                *listops_task.TREE_MODELS)),
    "cell": Rule(str, choices=CELLS),
    "forget_bias": Rule(float),
    "gru_reset_after": _flag(),
    "rnn_activation": Rule(str, choices=RNN_ACTIVATIONS, noun="activation"),
    "hidden_size": _count(1),
    "num_layers": _count(1),
    "embed_size": _count(1),
    "tie_embeddings": _flag(),
    "init_scale": Rule(float, minimum=0, hint="0: the cells' own init"),
    "unroll": _count(1),
    "learn_initial_state": _flag(),
    "bidirectional": _flag(),
    "direction": Rule(str, choices=tagger.DIRECTIONS),
    "output_delay": _count(hint="steps the output lags its word; forward only"),
    "attention": Rule(str, choices=seq2seq.ATTENTIONS),
    "input_feeding": _flag(),
    "bridge": Rule(str, choices=("", *seq2seq.BRIDGES),
                   hint="'': copy, or dense if bidirectional"),
    "reverse_source": _flag(),
    "dropout_rate": _fraction(minimum=0, below=1),
    "word_dropout": _fraction(minimum=0, below=1),
    "input_dropout_rate": _fraction(minimum=0, below=1),
    "recurrent_dropout_rate": _fraction(minimum=0, below=1),
    "pooling": Rule(str, choices=classifier.POOLINGS),
    "char_embed_size": _count(1),
    "char_hidden_size": _count(1),
    "mlp_layers": _count(),
    "mlp_size": _count(hint="0: hidden_size"),
    "objective": Rule(str, choices=tree_parser.OBJECTIVES),
    "gold_pairs": Rule(str, choices=tree_parser.GOLD_PAIRS, noun="gold pairs rule"),
    "margin": Rule(float, minimum=0),
    # Decoding.
    "max_decode_len": _count(1),
    "beam_size": _count(1),
    "beam_score": Rule(str, choices=("", *tree_parser.BEAM_SCORES),
                       hint="'': by objective"),
    "length_alpha": Rule(float, minimum=0),
    "bleu_max_sentences": _count(hint="0: the whole split"),
    # Optimisation.
    "optimizer": Rule(str, choices=OPTIMIZERS),
    "learning_rate": Rule(float, above=0),
    "momentum": _fraction(minimum=0, below=1),
    "lr_schedule": Rule(str, choices=LR_SCHEDULES, noun="schedule"),
    "lr_decay_steps": _count(hint="0: num_train_steps"),
    "lr_decay_factor": _fraction(above=0, maximum=1),
    "lr_decay_start_step": _count(),
    "lr_decay_every_steps": _count(1),
    "warmup_steps": _count(),
    "grad_clip_norm": Rule(float, minimum=0, hint="0: no clipping"),
    "ema_decay": _fraction(minimum=0, below=1),
    "loss_over_time": Rule(str, choices=ptb_task.LOSS_OVER_TIME),
    # Budgets and cadence.
    "num_train_steps": _count(hint="0: max_train_examples is the budget"),
    "max_train_examples": _count(hint="0: no budget in examples"),
    "stop_when_solved": _flag(),
    "solved_accuracy": Rule(float, minimum=0, hint="> 1: never solved"),
    "solved_max_error": _fraction(minimum=0, maximum=1),
    "eval_every_steps": _count(1),
    "log_every_steps": _count(1),
    "eval_batch_size": _count(1),
    "num_eval_examples": _count(1),
    "max_checkpoints_to_keep": _count(1, hint="a rerun resumes from the latest "
                                      "checkpoint"),
    "best_metric": Rule(str, check=check_best_metric),
    "per_class_metrics": _flag(),
    "progress_bar": _flag(),
    # Replicas in one program (replicas.py).
    "num_replicas": _count(1),
    "replica_sweep": Rule(str, check=replicas.parse_sweep),
    "replica_program": Rule(str, choices=("auto", "vmap", "unrolled")),
    # Devices (devices.py, precision.py).
    "num_devices": _count(hint="0: all visible devices"),
    "compute_dtype": Rule(str, choices=precision.COMPUTE_DTYPES),
    "grad_accum_steps": _count(1),
}

# Keys that one task reads differently from the rest: task -> key -> rule.
TASK_RULES: dict[str, dict[str, Rule]] = {
    "adding": {
        "seq_len": _count(2, hint="the adding problem marks two steps"),
    },
    "temporal_order": {
        "variant": Rule(str, choices=tuple(temporal_order_task.POSITIONS)),
    },
    "reber": {
        "max_len": _count(SHORTEST_REBER_STRING, hint="the shortest embedded "
                          "Reber string has 9 symbols"),
    },
    "ptb": {
        "variant": Rule(str, choices=ptb_config.VARIANTS),
        "embed_size": _count(hint="0: hidden_size"),
    },
    "nmt": {
        "variant": Rule(str, choices=tuple(nmt_config.VARIANTS)),
    },
    "parse": {
        "dataset": Rule(str, choices=parse_task.DATASETS),
    },
    "sentiment": {
        "dataset": Rule(str, choices=tuple(sentiment_corpus.SOURCES)),
    },
    "captioning": {
        "dataset": Rule(str, choices=(*caption_corpus.CONFIGS, caption_corpus.COCO)),
    },
    "tagging": {
        "dataset": Rule(str, choices=tuple(ud_corpus.TREEBANKS), noun="treebank"),
        "variant": Rule(str, choices=tuple(tagging_config.config_args()),
                        noun="tagging config"),
    },
}


def rules_for(task: str) -> dict[str, Rule]:
  """RULES with `task`'s own rules in place of the shared ones."""
  return {**RULES, **TASK_RULES.get(task, {})}


# ----------------------------------------------------------------------------
# Relations between keys: each takes the config (its keys already checked one
# by one) and raises ConfigError naming the key to change.

def _has(config, *keys: str) -> bool:
  return all(key in config for key in keys)


def _eval_every_a_multiple_of_log_every(config) -> None:
  if (_has(config, "eval_every_steps", "log_every_steps")
      and config.eval_every_steps % config.log_every_steps):
    raise ConfigError(
        "eval_every_steps", f"eval_every_steps ({config.eval_every_steps}) must "
        f"be a multiple of log_every_steps ({config.log_every_steps})")


def _a_training_budget(config) -> None:
  if config.get("num_train_steps", 0) <= 0 and not config.get("max_train_examples"):
    raise ConfigError("num_train_steps", "num_train_steps: set a positive step "
                      "budget or max_train_examples")


def _copy_bridge_unidirectional(config) -> None:
  if config.get("bridge") == "copy" and config.get("bidirectional"):
    raise ConfigError("bridge", "bridge: 'copy' needs a unidirectional encoder; "
                      "use 'dense' (the default for bidirectional) or 'zeros'")


def _input_feeding_with_luong_attention(config) -> None:
  if config.get("input_feeding") and config.get("attention") not in ("dot", "general"):
    raise ConfigError("input_feeding", f"input_feeding: only for Luong attention "
                      f"('dot', 'general'), got attention={config.attention!r}")


def _dot_attention_unidirectional(config) -> None:
  if config.get("attention") == "dot" and config.get("bidirectional"):
    raise ConfigError("attention", "attention: 'dot' needs memory width == "
                      "hidden_size, so a unidirectional encoder; use 'general' "
                      "or 'bahdanau' with bidirectional=True")


def _output_delay_forward_only(config) -> None:
  if config.get("output_delay") and config.get("direction") != "forward":
    raise ConfigError("output_delay", f"output_delay: only for "
                      f"direction='forward', got direction="
                      f"{config.get('direction')!r} with output_delay="
                      f"{config.output_delay}")


def _tied_embeddings_match_hidden(config) -> None:
  if config.get("tie_embeddings") and "hidden_size" in config:
    embed_size = config.get("embed_size") or config.hidden_size
    if embed_size != config.hidden_size:
      raise ConfigError("tie_embeddings", f"tie_embeddings: needs embed_size == "
                        f"hidden_size (or embed_size=0), got {embed_size} and "
                        f"{config.hidden_size}")


def _replica_sweep_fits(config) -> None:
  """One swept value per replica, each one the swept key's rule accepts."""
  try:
    replicas.check(config)
  except ValueError as e:
    raise ConfigError("replica_sweep", f"replica_sweep: {e}") from None
  sweep = replicas.parse_sweep(config.get("replica_sweep", ""))
  if sweep is None or sweep.key not in config:
    return
  rule = rules_for(config.get("task", "")).get(sweep.key)
  for value in sweep.values:
    message = rule.refusal(sweep.key, value) if rule else None
    if message is not None:
      raise ConfigError("replica_sweep", f"replica_sweep: {message}")


def _ema_without_accumulation(config) -> None:
  if config.get("ema_decay", 0.0) > 0 and config.get("grad_accum_steps", 1) > 1:
    raise ConfigError("grad_accum_steps", "grad_accum_steps: the moving average "
                      "(ema_decay > 0) is kept per batch, not per update; use "
                      "one of them, or a larger batch_size instead of "
                      "accumulating")


RELATIONS: tuple[Callable[[Any], None], ...] = (
    _eval_every_a_multiple_of_log_every,
    _a_training_budget,
    _copy_bridge_unidirectional,
    _input_feeding_with_luong_attention,
    _dot_attention_unidirectional,
    _tied_embeddings_match_hidden,
    _output_delay_forward_only,
    _replica_sweep_fits,
    _ema_without_accumulation,
)


def check_key(config, key: str, rules: dict[str, Rule] | None = None) -> None:
  """ConfigError unless config[key] keeps its rule (the config's task's one)."""
  rules = rules_for(config.get("task", "")) if rules is None else rules
  if key not in rules:
    raise ConfigError(key, f"{key}: no rule for this config key in "
                      f"experiments/configs/rules.py (add one there)")
  message = rules[key].refusal(key, config[key])
  if message is not None:
    raise ConfigError(key, message)


def validate(config) -> None:
  """ConfigError naming the key unless every key keeps its rule and every
  relation holds. Keys are checked in RULES' order, then the relations."""
  rules = rules_for(config.get("task", "")) if isinstance(
      config.get("task", ""), str) else RULES
  order = {key: i for i, key in enumerate(rules)}
  for key in sorted(config.keys(), key=lambda k: order.get(k, -1)):
    check_key(config, key, rules)
  for relation in RELATIONS:
    relation(config)


def describe(key: str, task: str = "") -> str:
  """What `key` accepts, e.g. 'an integer >= 1'; '' for a key without a rule."""
  rule = rules_for(task).get(key)
  return rule.describe() if rule else ""
