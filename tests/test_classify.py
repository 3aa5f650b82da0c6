"""experiments.classify on tiny trained sentiment and tagging workdirs: one
well-formed answer per stdin line (bad UTF-8, empty, over-long lines and
unknown words cost that line a note only), answers independent of batching,
and a missing, damaged or mismatched vocabulary file is a one-line error
naming it."""

import os
import re
import shutil
import subprocess
import sys
import types

import pytest

import train
from experiments import classify
from experiments import cli
from experiments import line_input
from tasks import sentiment
from tasks import tagging
from tests import test_stdin_tools as stdin_tools
from tests import test_text_tasks as text_tasks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OVER_LONG = b"x" * (line_input.MAX_LINE_BYTES + 1)
TAGS = {"ADV", "DET", "NOUN", "PUNCT", "VERB"}   # text_tasks.SENTENCES' tags


def _run(args, stdin: bytes = b""):
  env = {**os.environ, "PYTHONPATH": ROOT}
  return subprocess.run([sys.executable, "-m", "experiments.classify", *args],
                        input=stdin, cwd=ROOT, env=env, capture_output=True,
                        timeout=300)


def _train(config, workdir):
  config.update(num_train_steps=2, eval_every_steps=2, log_every_steps=2,
                progress_bar=False)
  train.train_and_evaluate(config, str(workdir))
  return workdir


@pytest.fixture(scope="module")
def sentiment_workdir(tmp_path_factory):
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(sentiment.sentiment_data, "read_split",
                  text_tasks.read_fake_reviews)
    return _train(text_tasks.small_sentiment_config(),
                  tmp_path_factory.mktemp("sentiment") / "run")


@pytest.fixture(scope="module")
def tagging_workdir(tmp_path_factory):
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(tagging.ud, "read_tagging", text_tasks.read_fake_treebank)
    return _train(text_tasks.small_tagging_config(),
                  tmp_path_factory.mktemp("tagging") / "run")


_notes = stdin_tools.notes_by_line


def _answers(done, count: int) -> list[str]:
  assert done.returncode == 0, done.stderr.decode()
  out = done.stdout.decode().split("\n")
  assert len(out) == count + 1 and out[-1] == ""
  return out[:-1]


# ----------------------------------------------------------------------------
# Sentiment (vocabulary <pad> <unk> great awful film dull; max_len 3, keep_last).

def test_sentiment_answers_every_line(sentiment_workdir):
  lines = [b"a great film", b"great \xff awful", b"", OVER_LONG, b"dull",
           b"great film film dull\r", b"   ", b"<br />"]
  done = _run([f"--workdir={sentiment_workdir}", "--batch_size=2"],
              b"\n".join(lines) + b"\n")
  out = _answers(done, len(lines))
  for k in (0, 1, 4, 5):
    assert re.fullmatch(r"(positive|negative) (0\.[5-9]\d\d|1\.000)", out[k]), out
  assert out[2] == out[3] == out[6] == out[7] == ""
  assert _notes(done.stderr.decode()) == {
      1: "not in the vocabulary, read as <unk>: ['a']",
      2: "not valid UTF-8 (first bad byte at offset 6); 1 undecodable byte "
         "sequence(s) read as U+FFFD; not in the vocabulary, read as <unk>: "
         "['\ufffd']",
      3: "empty input",
      4: f"longer than {line_input.MAX_LINE_BYTES} bytes "
         f"({line_input.MAX_LINE_BYTES + 2} with its line end); skipped",
      6: "input cut from 4 to its last 3 tokens (the model's max_len)",
      7: "empty input",
      8: "no words"}


def test_sentiment_answers_do_not_depend_on_batching(sentiment_workdir):
  loaded = classify.load(str(sentiment_workdir))
  texts = ["great fun", "awful awful plot dull", "", "film", "dull dull"]
  one = classify.classify_texts(loaded, texts, batch_size=1)
  many = classify.classify_texts(loaded, texts, batch_size=4)
  assert [o.text for o in one] == [o.text for o in many]
  assert one[2] == classify.Output("", "empty input")
  # The cut keeps the last 3 tokens, as training did.
  cut = classify.classify_texts(loaded, ["zzz awful plot dull", "awful plot dull"])
  assert cut[0].text == cut[1].text


def test_sentiment_workdir_with_a_best_checkpoint(sentiment_workdir):
  best = classify.load(str(sentiment_workdir), best=True)
  assert best.step == 2
  with pytest.raises(ValueError, match="step: no checkpoint 7"):
    classify.load(str(sentiment_workdir), 7)


# ----------------------------------------------------------------------------
# Tagging.

def test_tagging_answers_every_line(tagging_workdir):
  lines = [b"the dog runs", b"The  cat\tsleeps .", b"\xffdog zebra", b"",
           b"\xe2\x98\x83 runs"]
  done = _run([f"--workdir={tagging_workdir}"], b"\n".join(lines))
  out = _answers(done, len(lines))
  for k, words in {0: ["the", "dog", "runs"], 1: ["The", "cat", "sleeps", "."],
                   2: ["\ufffddog", "zebra"], 4: ["\u2603", "runs"]}.items():
    pairs = [item.rsplit("/", 1) for item in out[k].split(" ")]
    assert [w for w, _ in pairs] == words, out[k]
    assert {t for _, t in pairs} <= TAGS, out[k]
  assert out[3] == ""
  assert _notes(done.stderr.decode()) == {
      3: "not valid UTF-8 (first bad byte at offset 0); 1 undecodable byte "
         "sequence(s) read as U+FFFD; not in the vocabulary, read as <unk>: "
         "['zebra', '\ufffddog']; not in the character set, read as <unk>: "
         "['b', 'z', '\ufffd']",
      4: "empty input",
      5: "not in the vocabulary, read as <unk>: ['\u2603']; not in the "
         "character set, read as <unk>: ['\u2603']"}


def test_tagging_tags_a_long_line_in_pieces(tagging_workdir, monkeypatch):
  loaded = classify.load(str(tagging_workdir))
  words = "the dog runs . The cat sleeps".split()
  whole = classify.classify_texts(loaded, [" ".join(words[:3])])[0]
  monkeypatch.setattr(classify, "MAX_TAGGED_WORDS", 3)
  long = classify.classify_texts(loaded, [" ".join(words)], batch_size=2)[0]
  assert [item.rsplit("/", 1)[0] for item in long.text.split(" ")] == words
  assert long.text.startswith(whole.text + " ")   # a piece is read on its own
  assert long.note == "7 words: tagged in 3 pieces of at most 3 words, each read on its own"


# ----------------------------------------------------------------------------
# The run's files.

def _copy(workdir, to):
  shutil.copytree(workdir, to, ignore=shutil.ignore_patterns("*.lock"))
  return to


def test_missing_vocabulary_is_a_one_line_error(tagging_workdir, tmp_path):
  workdir = _copy(tagging_workdir, tmp_path / "copy")
  path = workdir / tagging.CHARACTERS_FILE
  path.unlink()
  with pytest.raises(FileNotFoundError) as missing:
    classify.load(str(workdir))
  assert cli.exit_code(missing.value) == cli.EXIT_RUNTIME
  assert cli.message(missing.value) == (
      f"{path}: no vocabulary file: training writes the run's vocabulary there "
      "and its checkpoints read with that one only; copy it back from the "
      "training run")


@pytest.mark.parametrize("contents, problem", [
    (b"", "empty"),
    (b"<pad>\n<unk>\ngreat\xff\n", "not UTF-8 text (byte 17)"),
    (b"<pad>\n<unk>\ngreat", "no line end after its last entry"),
    (b"<pad>\n<unk>\n\ngreat\n", "an empty entry on line 3"),
    (b"<pad>\n<unk>\ngreat\ngreat\n", "an entry occurs twice"),
    (b"great\n<pad>\n<unk>\n", "expected ['<pad>', '<unk>'] first, got "
     "['great', '<pad>']")])
def test_damaged_vocabulary_names_the_file(sentiment_workdir, tmp_path,
                                           contents, problem):
  workdir = tmp_path / "copy"
  os.makedirs(workdir)
  path = workdir / sentiment.VOCABULARY_FILE
  path.write_bytes(contents)
  with pytest.raises(cli.CorruptFileError) as damaged:
    classify.read_run_vocabulary(str(workdir), sentiment.VOCABULARY_FILE)
  assert cli.message(damaged.value) == f"{path}: {problem}; the file is damaged"
  assert cli.exit_code(damaged.value) == cli.EXIT_RUNTIME


def test_vocabulary_of_another_size_is_named(sentiment_workdir, tmp_path):
  workdir = _copy(sentiment_workdir, tmp_path / "copy")
  path = workdir / sentiment.VOCABULARY_FILE
  path.write_bytes(path.read_bytes() + b"extra\n")
  with pytest.raises(cli.CorruptFileError,
                     match=f"^{re.escape(str(path))}: their sizes \\(words 7\\) "
                     "do not fit the checkpoint"):
    classify.load(str(workdir))


def test_other_tasks_and_bad_flags_are_usage_errors(sentiment_workdir, tmp_path):
  (tmp_path / "config.json").write_text('{"task": "ptb"}')
  with pytest.raises(ValueError, match="holds task 'ptb', not one of"):
    classify.load(str(tmp_path))
  flags_ = types.SimpleNamespace(workdir=str(sentiment_workdir), step=None,
                                 best=False, batch_size=0)
  with pytest.raises(cli.UsageError, match="^--batch_size: expected a positive "
                     "integer, got 0$") as usage:
    classify._run(flags_)  # pylint: disable=protected-access
  assert cli.exit_code(usage.value) == cli.EXIT_USAGE
