"""Part-of-speech tagging (N -> N) on UD treebanks: Hebrew-HTB and Turkish.

Each word is read as its embedding (a vocabulary of the training split's
words, lower-cased if config.lowercase, seen >= config.min_count times, at
most config.max_vocab_size ids; '<pad>' 0, '<unk>' 1) joined with a
bidirectional RNN over its characters (`models.char_encoder`: the word's
first config.max_word_len characters, embedded in config.char_embed_size,
config.char_hidden_size units per direction; characters from the training
split, case kept). A word-level RNN (config.cell, hidden_size per
direction, num_layers) reading the sentence in config.direction
('bidirectional', 'forward' or 'backward'; Schuster & Paliwal 1997) and a
dense layer give one tag per word (Plank et al. 2016); a forward net with
config.output_delay = d tags word t from step t + d (`models.tagger`).
config.word_dropout replaces training words by '<unk>' at that rate.

Batches (B = batch, T = a bucket's padded words, from
config.bucket_boundaries; W = the batch's longest word, rounded up to a
multiple of 8 and capped at max_word_len; `input_pipeline.BucketedBatches`):
'inputs' [B, T] word ids, 'lengths' [B], 'chars' [B, T, W] character ids,
'char_lengths' [B, T], 'tags' [B, T], 'unseen' [B, T] (the word, as the
vocabulary sees it, never occurs in the training split), 'weights' [B] (0
on padding rows). Sentences are never truncated.

Metrics on 'validation' (as 'valid') and 'test': accuracy (per token),
accuracy_unseen (tokens unseen in training), unseen_rate, loss, tokens,
sentences, and with config.per_class_metrics precision/TAG, recall/TAG,
f1/TAG for every tag and macro_f1 (`tasks.class_metrics`, from the
confusion counts [K, K] that the loss adds to its sums, padding excluded).
Run files in WORKDIR: vocabulary.txt, characters.txt, tags.txt
(one entry per line, line k = id k) and data_stats.json (per split:
sentences, tokens, unknown-word and unseen-word rates, truncated-word rate).
The tag set is the union of the tags in all three splits, sorted.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import NamedTuple, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

import input_pipeline
from corpora import ud
from models import char_encoder
from models import tagger
from models.checks import check_one_of
from tasks import base
from tasks import class_metrics

SPLITS = {"train": "train", "valid": "validation", "test": "test"}
VOCABULARY_FILE = "vocabulary.txt"
CHARACTERS_FILE = "characters.txt"
TAGS_FILE = "tags.txt"
DATA_STATS_FILE = "data_stats.json"
CHAR_WIDTH_MULTIPLE = 8   # W is rounded up to this, so jit sees few widths


class EncodedSentence(NamedTuple):
  """One sentence as ids: words, tags, unseen [L]; chars: L arrays of ids."""
  words: np.ndarray
  chars: list[np.ndarray]
  tags: np.ndarray
  unseen: np.ndarray


@dataclasses.dataclass(frozen=True)
class TaggingTask(base.Task):
  """A Task whose model also reads the batch's 'chars' and 'char_lengths'."""

  def apply(self, params, batch, rng, carry=(), *, train: bool):
    return self.model.apply(
        {"params": params}, batch["inputs"], batch["lengths"], batch["chars"],
        batch["char_lengths"], deterministic=not train,
        rngs={"dropout": rng} if train else None), carry

  def init_params(self, rng, batch):
    return _init_params(self.model, rng, batch["inputs"], batch["lengths"],
                        batch["chars"], batch["char_lengths"])


@functools.partial(jax.jit, static_argnames="model")
def _init_params(model, rng, inputs, lengths, chars, char_lengths):
  return model.init(rng, inputs, lengths, chars, char_lengths)["params"]


def word_form(word: str, lowercase: bool) -> str:
  return word.lower() if lowercase else word


def encode_sentence(sentence: ud.TaggedSentence, *, words: input_pipeline.Vocabulary,
                    chars: input_pipeline.Vocabulary, tags: input_pipeline.Vocabulary,
                    seen: set[str], lowercase: bool, max_word_len: int) -> EncodedSentence:
  forms = [word_form(w, lowercase) for w in sentence.words]
  return EncodedSentence(
      words=words.encode(forms),
      chars=[chars.encode(list(w[:max_word_len])) for w in sentence.words],
      tags=tags.encode(sentence.upos),
      unseen=np.asarray([f not in seen for f in forms], bool))


def make_rows(sentences: Sequence[EncodedSentence], max_word_len: int):
  """-> make_rows(indices [B] (-1: padding row), T) -> the batch dict."""
  def rows(indices: np.ndarray, steps: int) -> dict[str, np.ndarray]:
    chosen = [sentences[i] if i >= 0 else None for i in indices]
    longest_word = max((len(c) for s in chosen if s is not None for c in s.chars),
                       default=1)
    width = min(max_word_len, -(-longest_word // CHAR_WIDTH_MULTIPLE)
                * CHAR_WIDTH_MULTIPLE)
    batch = len(indices)
    chars = np.zeros((batch, steps, width), np.int32)
    char_lengths = np.zeros((batch, steps), np.int32)
    for b, s in enumerate(chosen):
      for t, c in enumerate(s.chars if s is not None else ()):
        chars[b, t, :len(c)] = c
        char_lengths[b, t] = len(c)
    pick = lambda field: [getattr(s, field) if s is not None else None for s in chosen]
    return {"inputs": input_pipeline.pad_rows(pick("words"), steps),
            "lengths": np.asarray([len(s.words) if s is not None else 1
                                   for s in chosen], np.int32),
            "chars": chars, "char_lengths": char_lengths,
            "tags": input_pipeline.pad_rows(pick("tags"), steps),
            "unseen": input_pipeline.pad_rows(pick("unseen"), steps, bool),
            "weights": (indices >= 0).astype(np.float32)}
  return rows


def loss(logits, batch):
  """logits [B, T, K] -> (cross-entropy averaged over the real tokens, sums:
  nll, correct, tokens, correct_unseen, unseen, sentences, and confusion
  [K, K] (gold x predicted tag counts)). Padding steps and padding rows count
  nowhere."""
  batch_size, steps, num_tags = logits.shape
  mask = (base.step_mask(batch["lengths"], steps)
          & (batch["weights"] > 0)[:, None]).astype(jnp.float32)        # [B, T]
  nll = optax.softmax_cross_entropy_with_integer_labels(
      logits.reshape(batch_size * steps, num_tags),
      batch["tags"].reshape(batch_size * steps)).reshape(batch_size, steps)
  predicted = jnp.argmax(logits, -1)
  correct = (predicted == batch["tags"]).astype(jnp.float32)
  unseen = batch["unseen"].astype(jnp.float32) * mask
  tokens = jnp.sum(mask)
  total = jnp.sum(nll * mask)
  return total / jnp.maximum(tokens, 1.0), {
      "nll": total, "correct": jnp.sum(correct * mask), "tokens": tokens,
      "correct_unseen": jnp.sum(correct * unseen), "unseen": jnp.sum(unseen),
      "sentences": jnp.sum(batch["weights"]),
      class_metrics.CONFUSION: class_metrics.confusion_counts(
          batch["tags"], predicted, mask, num_tags)}


def summarize(totals, tag_names: Sequence[str] | None = None,
              per_class: bool = True):
  """Totals of the loss's sums -> the metrics; per_class adds precision/TAG,
  recall/TAG, f1/TAG (TAG from tag_names; None: the tag ids) and macro_f1."""
  metrics = {"accuracy": base.ratio(totals, "correct", "tokens"),
             "accuracy_unseen": base.ratio(totals, "correct_unseen", "unseen"),
             "unseen_rate": base.ratio(totals, "unseen", "tokens"),
             "loss": base.ratio(totals, "nll", "tokens"),
             "tokens": int(totals["tokens"]), "sentences": int(totals["sentences"])}
  if per_class and class_metrics.CONFUSION in totals:
    confusion = totals[class_metrics.CONFUSION]
    names = tag_names or [str(k) for k in range(len(confusion))]
    metrics.update(class_metrics.metrics(confusion, names))
  return metrics


def read_splits(config) -> dict[str, list[ud.TaggedSentence]]:
  out = {}
  for name, split in SPLITS.items():
    sentences = ud.read_tagging(config.dataset, split, data_dir=config.data_dir or None)
    limit = config.max_train_size if name == "train" else config.max_eval_size
    out[name] = sentences[:limit] if limit else sentences
  return out


def split_stats(sentences: Sequence[ud.TaggedSentence],
                encoded: Sequence[EncodedSentence], max_word_len: int) -> dict[str, float]:
  tokens = sum(len(s.words) for s in sentences)
  unknown = sum(int(np.sum(e.words == input_pipeline.UNK_ID)) for e in encoded)
  unseen = sum(int(np.sum(e.unseen)) for e in encoded)
  long_words = sum(len(w) > max_word_len for s in sentences for w in s.words)
  return {"sentences": len(sentences), "tokens": tokens,
          "unknown_rate": unknown / max(tokens, 1),
          "unseen_rate": unseen / max(tokens, 1),
          "truncated_word_rate": long_words / max(tokens, 1)}


def word_direction(config) -> str:
  """config.direction; for a run's config from before that key, 'forward'
  when its config.bidirectional is false, else 'bidirectional'."""
  if "direction" in config:
    return config.direction
  return "bidirectional" if config.get("bidirectional", True) else "forward"


def build_model(config, num_words: int, num_chars: int,
                num_tags: int) -> tagger.WordCharTagger:
  direction = word_direction(config)
  check_one_of("direction", direction, tagger.DIRECTIONS)
  options = flax.core.FrozenDict(base.cell_options(config))
  return tagger.WordCharTagger(
      vocab_size=num_words, embed_size=config.embed_size,
      char_encoder=char_encoder.CharWordEncoder(
          vocab_size=num_chars, embed_size=config.char_embed_size,
          hidden_size=config.char_hidden_size, cell=config.cell,
          cell_options=options),
      encoder=base.encoder(config, bidirectional=direction == "bidirectional",
                           dropout_rate=config.dropout_rate, cell_options=options),
      num_outputs=num_tags, word_dropout=config.word_dropout,
      unknown_id=input_pipeline.UNK_ID, padding_id=input_pipeline.PAD_ID,
      direction=direction, output_delay=config.get("output_delay", 0))


class ParameterCounts(NamedTuple):
  """Parameters of a tagger. total: all of them; word_level: the word-level
  RNN, the output layer and the end input of a delayed net, the part whose
  size the direction and hidden_size change (the word embeddings and the
  character encoder are the same in every direction)."""
  total: int
  word_level: int


WORD_LEVEL_PARAMS = ("encoder", "head", "end_input")


def count_parameters(params) -> ParameterCounts:
  """A tagger's params (arrays or shapes) -> ParameterCounts."""
  def size(tree):
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(tree))
  return ParameterCounts(
      total=size(params),
      word_level=sum(size(params[k]) for k in WORD_LEVEL_PARAMS if k in params))


def model_parameter_counts(config, num_words: int, num_chars: int,
                           num_tags: int) -> ParameterCounts:
  """The counts of the model `config` describes, for vocabularies of these
  sizes (no data read; shapes only, nothing is initialised)."""
  model = build_model(config, num_words, num_chars, num_tags)
  ids = jnp.ones((1, 2), jnp.int32)
  shapes = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), ids, jnp.array([2]), jnp.ones((1, 2, 3), jnp.int32),
      jnp.array([[3, 3]]))["params"])
  return count_parameters(shapes)


def parameter_counts(config) -> ParameterCounts:
  """The counts of `config`'s model on its treebank (reads the data to size
  the vocabularies, as a run would)."""
  task = build(config)
  shapes = jax.eval_shape(task.init_params, jax.random.PRNGKey(0), task.first_batch())
  return count_parameters(shapes)


def _one_per_line(vocab: input_pipeline.Vocabulary) -> bytes:
  return input_pipeline.vocabulary_file(vocab)


def build(config) -> TaggingTask:
  check_one_of("dataset", config.dataset, tuple(ud.TREEBANKS))
  boundaries = input_pipeline.parse_bucket_boundaries(config.bucket_boundaries)
  data = read_splits(config)
  train_forms = [[word_form(w, config.lowercase) for w in s.words] for s in data["train"]]
  words = input_pipeline.build_word_vocabulary(
      train_forms, min_count=config.min_count, max_size=config.max_vocab_size)
  chars = input_pipeline.build_word_vocabulary(
      [list(w) for s in data["train"] for w in s.words])
  tags = input_pipeline.Vocabulary(sorted({t for split in data.values()
                                           for s in split for t in s.upos}))
  seen = {f for forms in train_forms for f in forms}
  encode = functools.partial(encode_sentence, words=words, chars=chars, tags=tags,
                             seen=seen, lowercase=config.lowercase,
                             max_word_len=config.max_word_len)
  encoded = {name: [encode(s) for s in split] for name, split in data.items()}
  longest = max(len(s.words) for split in data.values() for s in split)
  steps = input_pipeline.bucket_steps(boundaries, longest)

  def lengths(name):
    return [len(s.words) for s in data[name]]

  train_batches = input_pipeline.BucketedBatches(
      lengths("train"), steps, make_rows(encoded["train"], config.max_word_len),
      config.batch_size, config.seed)
  eval_splits = {name: input_pipeline.bucketed_eval_batches(
      lengths(name), steps, make_rows(encoded[name], config.max_word_len),
      config.eval_batch_size) for name in ("valid", "test")}
  stats = {"vocabulary_size": len(words), "characters": len(chars),
           "tags": len(tags), "bucket_steps": list(steps),
           **{name: split_stats(data[name], encoded[name], config.max_word_len)
              for name in data}}
  return TaggingTask(
      model=build_model(config, len(words), len(chars), len(tags)),
      loss=loss, summarize=functools.partial(
          summarize, tag_names=tuple(tags.tokens),
          per_class=config.get("per_class_metrics", True)),
      train_batches=train_batches,
      eval_splits=eval_splits,
      examples_in=lambda batch: int(np.sum(batch["weights"])),
      run_files={VOCABULARY_FILE: _one_per_line(words),
                 CHARACTERS_FILE: _one_per_line(chars),
                 TAGS_FILE: _one_per_line(tags),
                 DATA_STATS_FILE: (json.dumps(stats, indent=1, sort_keys=True)
                                   + "\n").encode("utf-8")})
