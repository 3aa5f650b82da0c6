"""Labels stdin lines with a trained sentiment classifier or part-of-speech tagger.

  echo "a gripping , funny film" | python -m experiments.classify \
      --workdir=workdirs/sentiment_rt --best
  echo "the dog runs" | python -m experiments.classify \
      --workdir=workdirs/tagging_ud_he [--step=N] [--batch_size=64]

Reads WORKDIR/config.json (config.task says which: 'sentiment' or
'tagging'), rebuilds the model from the run's own vocabulary files
(vocabulary.txt; for tagging also characters.txt and tags.txt, as training
wrote them; the corpus is not read) and restores the latest (--step,
--best: WORKDIR/best_checkpoint) checkpoint's evaluation params. A missing,
damaged or mismatched vocabulary file is a one-line error naming it, never a
fallback to another vocabulary.

One output line per input line, always (stdin is read as bytes,
experiments/line_input.py):
  sentiment: the label and its probability, 'positive 0.934' /
    'negative 0.871'. The line is tokenised as in training
    (`corpora.sentiment.tokenize`, lower-cased if config.lowercase).
  tagging: 'word/TAG word/TAG ...', the line's whitespace-separated words,
    as they were typed, each with its tag.
Notes go to stderr as "line N: ..." for: bytes that are not UTF-8 (read as
U+FFFD); an empty line or one without words (an empty output line); a line
over line_input.MAX_LINE_BYTES (skipped: an empty output line); words not in
the vocabulary (read as '<unk>', listed) and, for tagging, characters not in
the character set (read as '<unk>', listed); a sentiment input over
config.max_len tokens, cut to its first or last config.max_len tokens
(config.truncation), as training cut it; a tagging input over
MAX_TAGGED_WORDS words, which is tagged in consecutive pieces of at most
MAX_TAGGED_WORDS words, each read on its own (every word gets a tag, but no
context crosses a piece's boundary). As in training, the tagger reads each
word's first config.max_word_len characters.

Lines are classified --batch_size at a time (padded to the run's length
buckets, so jit compiles few programs), and each batch's output is printed
when it is done: give --batch_size=1 to get each answer as soon as its line
is typed.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

import input_pipeline
import replicas
import train
from corpora import sentiment as sentiment_data
from experiments import cli
from experiments import line_input
from tasks import sentiment as sentiment_task
from tasks import tagging as tagging_task

TASKS = ("sentiment", "tagging")
MAX_TAGGED_WORDS = 256   # longer tagging inputs are tagged in pieces of this
MAX_LISTED = 20          # unknown words or characters named in a note
DEFAULT_BATCH_SIZE = 64
_MODEL_INPUTS = {"sentiment": ("inputs", "lengths"),
                 "tagging": ("inputs", "lengths", "chars", "char_lengths")}


class Vocabularies(NamedTuple):
  """The run's files: words (both tasks); characters and tags (tagging)."""
  words: input_pipeline.Vocabulary
  chars: input_pipeline.Vocabulary | None = None
  tags: input_pipeline.Vocabulary | None = None


class Loaded(NamedTuple):
  """A run ready to classify; predict: `predict_function(config, model)`."""
  config: Any
  model: Any
  params: Any
  vocabularies: Vocabularies
  step: int
  predict: Callable[..., jax.Array]


class Output(NamedTuple):
  """The answer to one line, and a note when the line was not read as typed."""
  text: str
  note: str = ""


class Row(NamedTuple):
  """One sequence for the model: a line (or a piece of a long tagging line).

  line: the index of its line among those classified together.
  ids [L]: word ids; chars: L arrays of character ids (tagging only).
  """
  line: int
  ids: np.ndarray
  chars: list[np.ndarray] | None = None


class Prepared(NamedTuple):
  """A line ready for the model: its rows (none: answered with '' at once),
  the words shown in the answer (tagging) and its notes."""
  rows: list[Row]
  words: list[str]
  note: str


# ----------------------------------------------------------------------------
# The run's files and params.

def read_run_vocabulary(workdir: str, name: str, *,
                        specials: bool = True) -> input_pipeline.Vocabulary:
  """WORKDIR/name as training wrote it (one token per line, line k = id k).

  FileNotFoundError naming the path when it is missing; CorruptFileError
  naming it when it is not such a file (not UTF-8, no final line end, empty
  or repeated entries, or, with specials, not starting with '<pad>', '<unk>').
  """
  path = os.path.join(workdir, name)
  if not os.path.exists(path):
    raise FileNotFoundError(
        2, "no vocabulary file: training writes the run's vocabulary there and "
        "its checkpoints read with that one only; copy it back from the "
        "training run", path)
  with open(path, "rb") as f:
    contents = f.read()
  problem = _vocabulary_problem(contents, specials)
  if problem:
    raise cli.CorruptFileError(f"{path}: {problem}; the file is damaged")
  return input_pipeline.read_vocabulary_file(contents)


def _vocabulary_problem(contents: bytes, specials: bool) -> str:
  """What is wrong with a vocabulary file's bytes ('' if nothing)."""
  try:
    text = contents.decode("utf-8")
  except UnicodeDecodeError as e:
    return f"not UTF-8 text (byte {e.start})"
  if not text.endswith("\n"):
    return "empty" if not text else "no line end after its last entry"
  tokens = text.split("\n")[:-1]
  if "" in tokens:
    return f"an empty entry on line {tokens.index('') + 1}"
  if len(set(tokens)) != len(tokens):
    return "an entry occurs twice"
  wanted = [input_pipeline.PAD, input_pipeline.UNK]
  if specials and tokens[:2] != wanted:
    return f"expected {wanted} first, got {tokens[:2]}"
  return ""


def run_vocabularies(workdir: str, config) -> Vocabularies:
  """The vocabulary files of a sentiment or tagging run in WORKDIR."""
  words = read_run_vocabulary(workdir, sentiment_task.VOCABULARY_FILE)
  if config.task == "sentiment":
    return Vocabularies(words)
  return Vocabularies(
      words, read_run_vocabulary(workdir, tagging_task.CHARACTERS_FILE),
      read_run_vocabulary(workdir, tagging_task.TAGS_FILE, specials=False))


def build_model(config, vocabularies: Vocabularies):
  if config.task == "sentiment":
    return sentiment_task.build_model(config, len(vocabularies.words))
  return tagging_task.build_model(config, len(vocabularies.words),
                                  len(vocabularies.chars), len(vocabularies.tags))


def _abstract_params(config, model):
  """The params' shapes and dtypes (nothing is computed)."""
  inputs = jnp.zeros((1, 1), jnp.int32)
  lengths = jnp.ones((1,), jnp.int32)
  args = (inputs, lengths)
  if config.task == "tagging":
    args += (jnp.zeros((1, 1, 1), jnp.int32), jnp.ones((1, 1), jnp.int32))
  return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), *args))["params"]


def _restore_template(config, model) -> train.TrainState:
  params = _abstract_params(config, model)
  tx = train.make_optimizer(config)
  return train.TrainState(
      step=jax.ShapeDtypeStruct((), jnp.int32), params=params,
      opt_state=jax.eval_shape(tx.init, params),
      rng=jax.eval_shape(lambda: jax.random.PRNGKey(0)),
      ema_params=params if config.get("ema_decay", 0.0) > 0 else ())


def _vocabulary_paths(workdir: str, config) -> str:
  names = [sentiment_task.VOCABULARY_FILE]
  if config.task == "tagging":
    names += [tagging_task.CHARACTERS_FILE, tagging_task.TAGS_FILE]
  return ", ".join(os.path.join(workdir, name) for name in names)


def load(workdir: str, step: int | None = None, *, best: bool = False,
         replica: int | None = None) -> Loaded:
  """Config, model, vocabularies and evaluation params of a sentiment or
  tagging run in WORKDIR (read-only; safe while it still trains; `replica`:
  which one of a run of num_replicas > 1)."""
  workdir = os.path.abspath(os.path.expanduser(workdir))
  run_config = train.read_run_config(workdir)
  config = train.replica_config_of(workdir, run_config, replica)
  if config.get("task") not in TASKS:
    raise ValueError(f"workdir: {workdir} holds task {config.get('task')!r}, "
                     f"not one of {TASKS}")
  vocabularies = run_vocabularies(workdir, config)
  model = build_model(config, vocabularies)
  try:
    params, step = train.restore_replica_params(
        workdir, _restore_template(config, model),
        replicas.count(run_config), step, best=best, replica=replica)
  except ValueError as e:
    if "disagree" not in str(e):
      raise
    raise cli.CorruptFileError(
        f"{_vocabulary_paths(workdir, config)}: their sizes (words "
        f"{len(vocabularies.words)}" + (
            f", characters {len(vocabularies.chars)}, tags "
            f"{len(vocabularies.tags)}" if vocabularies.chars else "") +
        f") do not fit the checkpoint; a file is damaged or from another run "
        f"({cli.one_line(str(e))})") from None
  return Loaded(config, model, params, vocabularies, step,
                predict_function(config, model))


# ----------------------------------------------------------------------------
# Lines -> rows.

def _listed(items: Sequence[str]) -> str:
  shown = repr(list(items[:MAX_LISTED]))
  more = len(items) - MAX_LISTED
  return shown + (f" and {more} more" if more > 0 else "")


def unknown_note(unknown: Sequence[str], what: str = "the vocabulary") -> str:
  if not unknown:
    return ""
  return f"not in {what}, read as {input_pipeline.UNK}: {_listed(unknown)}"


def _empty(text: str) -> Prepared:
  return Prepared([], [], "empty input" if not text.strip() else "no words")


def prepare_sentiment(config, vocabularies: Vocabularies, text: str,
                      line: int = 0) -> Prepared:
  """A line -> one row of the ids training would read (cut as it cut)."""
  tokens = sentiment_data.tokenize(text, config.lowercase)
  if not tokens:
    return _empty(text)
  notes = []
  if len(tokens) > config.max_len:
    which = "first" if config.truncation == "keep_first" else "last"
    notes.append(f"input cut from {len(tokens)} to its {which} "
                 f"{config.max_len} tokens (the model's max_len)")
    tokens = input_pipeline.truncate(tokens, config.max_len, config.truncation)
  words = vocabularies.words
  notes.append(unknown_note(sorted({t for t in tokens if t not in words})))
  return Prepared([Row(line, words.encode(tokens))], [],
                  line_input.join_notes(*notes))


def prepare_tagging(config, vocabularies: Vocabularies, text: str,
                    line: int = 0) -> Prepared:
  """A line's whitespace-separated words -> rows of at most MAX_TAGGED_WORDS."""
  words = text.split()
  if not words:
    return _empty(text)
  forms = [tagging_task.word_form(w, config.lowercase) for w in words]
  read = [w[:config.max_word_len] for w in words]
  ids = vocabularies.words.encode(forms)
  chars = [vocabularies.chars.encode(list(w)) for w in read]
  notes = [
      unknown_note(sorted({w for w, f in zip(words, forms)
                           if f not in vocabularies.words})),
      unknown_note(sorted({c for w in read for c in w
                           if c not in vocabularies.chars}),
                   "the character set")]
  starts = range(0, len(words), MAX_TAGGED_WORDS)
  if len(words) > MAX_TAGGED_WORDS:
    notes.append(f"{len(words)} words: tagged in {len(starts)} pieces of at "
                 f"most {MAX_TAGGED_WORDS} words, each read on its own")
  rows = [Row(line, ids[s:s + MAX_TAGGED_WORDS], chars[s:s + MAX_TAGGED_WORDS])
          for s in starts]
  return Prepared(rows, words, line_input.join_notes(*notes))


# ----------------------------------------------------------------------------
# The model on rows.

def predict_function(config, model) -> Callable[..., jax.Array]:
  """The jitted model on a batch dict: sentiment -> [B, 2] label
  probabilities; tagging -> [B, T] the most likely tag of each word."""
  if config.task == "sentiment":
    def probabilities(params, batch):
      logits = model.apply({"params": params}, batch["inputs"], batch["lengths"],
                           deterministic=True)
      return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    return jax.jit(probabilities)

  def tag_ids(params, batch):
    logits = model.apply({"params": params}, batch["inputs"], batch["lengths"],
                         batch["chars"], batch["char_lengths"], deterministic=True)
    return jnp.argmax(logits, axis=-1)
  return jax.jit(tag_ids)


def bucket_steps(config, longest: int) -> tuple[int, ...]:
  """The padded lengths T of batches of rows of up to `longest` words: the
  run's bucket boundaries, then doubling up to `longest`."""
  boundaries = list(input_pipeline.parse_bucket_boundaries(config.bucket_boundaries))
  step = boundaries[-1] if boundaries else 16
  while step < longest:
    step *= 2
    boundaries.append(step)
  return input_pipeline.bucket_steps(boundaries, longest)


def _longest_row(config) -> int:
  return config.max_len if config.task == "sentiment" else MAX_TAGGED_WORDS


def _row_maker(config, rows: Sequence[Row]):
  """The task's own make_rows(indices, T) over `rows` (labels unused)."""
  if config.task == "sentiment":
    return sentiment_task.make_rows(sentiment_task.EncodedSplit(
        [r.ids for r in rows], np.zeros(len(rows), np.int32), {}))
  return tagging_task.make_rows(
      [tagging_task.EncodedSentence(r.ids, r.chars, np.zeros(len(r.ids), np.int32),
                                    np.zeros(len(r.ids), bool)) for r in rows],
      config.max_word_len)


def _batches(config, rows: Sequence[Row],
             batch_size: int) -> Iterator[tuple[np.ndarray, dict]]:
  """(indices into rows [B] (-1: padding), batch dict): B = batch_size rows
  of one length bucket each, padded to the bucket's length."""
  steps = bucket_steps(config, _longest_row(config))
  make_rows = _row_maker(config, rows)
  bucket = input_pipeline.bucket_index([len(r.ids) for r in rows], steps)
  for k in np.unique(bucket):
    members = np.flatnonzero(bucket == k)
    for start in range(0, len(members), batch_size):
      chosen = members[start:start + batch_size]
      indices = np.full(batch_size, -1, np.int64)
      indices[:len(chosen)] = chosen
      yield indices, make_rows(indices, steps[k])


def predict_rows(loaded: Loaded, rows: Sequence[Row],
                 batch_size: int = DEFAULT_BATCH_SIZE) -> list[np.ndarray]:
  """Per row: sentiment [2] label probabilities; tagging [L] tag ids."""
  out: list[np.ndarray | None] = [None] * len(rows)
  for indices, batch in _batches(loaded.config, rows, batch_size):
    inputs = {key: batch[key] for key in _MODEL_INPUTS[loaded.config.task]}
    result = np.asarray(jax.device_get(loaded.predict(loaded.params, inputs)))
    for b, i in enumerate(indices):
      if i >= 0:
        out[i] = result[b] if loaded.config.task == "sentiment" else (
            result[b, :len(rows[i].ids)])
  return out


# ----------------------------------------------------------------------------
# Lines -> answers.

def _prepare(loaded: Loaded, text: str, line: int) -> Prepared:
  prepare = (prepare_sentiment if loaded.config.task == "sentiment"
             else prepare_tagging)
  return prepare(loaded.config, loaded.vocabularies, text, line)


def classify_texts(loaded: Loaded, texts: Sequence[str],
                   batch_size: int = DEFAULT_BATCH_SIZE) -> list[Output]:
  """One Output per text: 'positive 0.934' or 'word/TAG ...' ('' for a text
  without words), with its note."""
  prepared = [_prepare(loaded, text, k) for k, text in enumerate(texts)]
  rows = [row for p in prepared for row in p.rows]
  predictions = predict_rows(loaded, rows, batch_size)
  per_line: list[list[np.ndarray]] = [[] for _ in texts]
  for row, prediction in zip(rows, predictions):
    per_line[row.line].append(prediction)
  return [Output(_answer(loaded, p, found) if p.rows else "", p.note)
          for p, found in zip(prepared, per_line)]


def _answer(loaded: Loaded, prepared: Prepared, predictions: list[np.ndarray]) -> str:
  if loaded.config.task == "sentiment":
    probabilities = predictions[0]
    label = int(np.argmax(probabilities))
    return f"{sentiment_task.LABEL_NAMES[label]} {float(probabilities[label]):.3f}"
  tags = loaded.vocabularies.tags.decode(np.concatenate(predictions))
  return " ".join(f"{word}/{tag}" for word, tag in zip(prepared.words, tags))


def _groups(lines: Iterable[line_input.Line],
            size: int) -> Iterator[list[line_input.Line]]:
  group = []
  for line in lines:
    group.append(line)
    if len(group) == size:
      yield group
      group = []
  if group:
    yield group


def classify_input(loaded: Loaded, lines: Iterable[line_input.Line], *,
                   batch_size: int = DEFAULT_BATCH_SIZE) -> None:
  """Prints one answer per line (an empty one for a skipped or empty line),
  batch_size lines at a time, and each line's notes on stderr."""
  for group in _groups(lines, batch_size):
    used = [line for line in group if not line.skipped]
    answers = iter(classify_texts(loaded, [line.text for line in used], batch_size))
    for line in group:
      answer = Output("") if line.skipped else next(answers)
      line_input.print_note(line.number, line_input.join_notes(line.note,
                                                               answer.note))
      print(answer.text, flush=True)


def _run(f: flags.FlagValues) -> None:
  cli.check_workdir_flag(f.workdir)
  if f.batch_size < 1:
    raise cli.UsageError(f"--batch_size: expected a positive integer, got "
                         f"{f.batch_size}")
  if f.step is not None and f.step < 0:
    raise cli.UsageError(f"--step: expected an integer >= 0, got {f.step}")
  loaded = load(f.workdir, f.step, best=f.best, replica=f.replica)
  classify_input(loaded, line_input.read_lines(), batch_size=f.batch_size)


def main():
  flags.DEFINE_string("workdir", None, "A sentiment or tagging training workdir.",
                      required=True)
  flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
  flags.DEFINE_integer("replica", None, "Which replica of a run of "
                       "num_replicas > 1 (required there).")
  flags.DEFINE_bool("best", False, "Read the checkpoint kept by the run's "
                    "best_metric (WORKDIR/best_checkpoint).")
  flags.DEFINE_integer("batch_size", DEFAULT_BATCH_SIZE, "Lines classified at "
                       "a time; each batch's answers are printed when it is "
                       "done (1: answer every line at once).")
  line_input.run_tool(_run)


if __name__ == "__main__":
  main()
