"""translate and sample as users run them, on tiny trained workdirs: any
stdin line (not UTF-8, empty, over-long) costs that line only; a missing or
damaged vocabulary file is a one-line error naming it."""

import os
import shutil
import subprocess
import sys
import types

import pytest

import input_pipeline
import train
from corpora import gettext_parallel as gp
from experiments import cli
from experiments import line_input
from experiments import sample as sample_lib
from experiments import translate
from experiments.configs import ptb as ptb_config
from tasks import nmt
from tests import test_nmt_data
from tests import test_ptb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OVER_LONG = b"x" * (line_input.MAX_LINE_BYTES + 1)
# The tiny corpus is defined (and registered) by tests/test_ptb.py.
SAMPLE_MAIN = "import tests.test_ptb\nfrom experiments import sample\nsample.main()"


def _run(args, stdin: bytes = b""):
  env = {**os.environ, "PYTHONPATH": ROOT}
  return subprocess.run([sys.executable, *args], input=stdin, cwd=ROOT, env=env,
                        capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def nmt_workdir(tmp_path_factory):
  root = tmp_path_factory.mktemp("nmt")
  catalogs = test_nmt_data.write_fixture(root / "catalogs")
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv(gp.ENV_ROOTS, str(catalogs))
    train.train_and_evaluate(test_nmt_data.tiny_config(root), str(root / "run"))
  return root / "run"


@pytest.fixture(scope="module")
def lm_workdir(tmp_path_factory):
  root = tmp_path_factory.mktemp("lm")
  chars = sum(len("_".join(line.split())) + 1
              for line in test_ptb.TINY_TEXTS["train"].splitlines())
  config = test_ptb.tiny_config(root, level="char", train_tokens=chars,
                                seq_len=20, num_epochs=1)
  train.train_and_evaluate(config, str(root / "run"))
  return root / "run"


# ----------------------------------------------------------------------------
# translate

def test_translate_answers_every_line(nmt_workdir):
  lines = [b"Open the file", b"Open \xff\xfe the \xc3 folder", b"", OVER_LONG,
           b"Close the window\r", b" ".join([b"open the file"] * 20)]
  done = _run(["-m", "experiments.translate", f"--workdir={nmt_workdir}",
               "--beam_size=1"], b"\n".join(lines) + b"\n")
  err = done.stderr.decode()
  assert done.returncode == 0, err
  out = done.stdout.decode().split("\n")
  assert len(out) == len(lines) + 1 and out[-1] == ""
  assert out[0] and out[1] and out[4] and out[5]
  assert out[2] == "" and out[3] == ""
  notes = _notes(err)
  assert notes[2].startswith("not valid UTF-8 (first bad byte at offset 5); 3 "
                             "undecodable byte sequence(s) read as U+FFFD")
  assert notes[3] == "empty input"
  assert notes[4] == (f"longer than {line_input.MAX_LINE_BYTES} bytes "
                      f"({line_input.MAX_LINE_BYTES + 2} with its line end); "
                      "skipped")
  assert notes[6].startswith("input cut from ")
  assert set(notes) <= set(range(1, len(lines) + 1))  # e.g. outputs cut


def notes_by_line(err: str) -> dict[int, str]:
  """stderr's 'line N: NOTE' lines as {N: NOTE}; nothing else may be there."""
  notes = {}
  for text in err.splitlines():
    number, note = text.split(": ", 1)
    assert number.startswith("line "), err
    notes[int(number.removeprefix("line "))] = note
  return notes


_notes = notes_by_line


def _copy_config(nmt_workdir, to):
  os.makedirs(to)
  shutil.copy(nmt_workdir / "config.json", to / "config.json")
  return to


def test_translate_without_its_vocabulary_is_a_one_line_error(nmt_workdir, tmp_path):
  workdir = _copy_config(nmt_workdir, tmp_path / "copy")
  path = workdir / nmt.SUBWORDS_FILE
  with pytest.raises(FileNotFoundError) as missing:
    translate.load(str(workdir))
  assert cli.message(missing.value).startswith(f"{path}: no subword vocabulary")
  done = _run(["-m", "experiments.translate", f"--workdir={workdir}"], b"Open\n")
  assert done.returncode == cli.EXIT_RUNTIME
  assert done.stdout == b""
  assert done.stderr.decode().splitlines() == [
      f"error: {path}: no subword vocabulary: training writes the run's "
      "vocabulary there and its checkpoints decode with that one only; copy it "
      "back from the training run"]


@pytest.mark.parametrize("contents", [b"", b"not a model \xff", b"\x0a\x05hello"])
def test_translate_with_a_damaged_vocabulary_names_it(nmt_workdir, tmp_path, contents):
  workdir = _copy_config(nmt_workdir, tmp_path / "copy")
  (workdir / nmt.SUBWORDS_FILE).write_bytes(contents)
  with pytest.raises(cli.CorruptFileError, match=(
      f"^{workdir / nmt.SUBWORDS_FILE}: not a sentencepiece model "
      f"\\({len(contents)} bytes\\); the file is damaged")) as damaged:
    translate.load(str(workdir))
  assert cli.exit_code(damaged.value) == cli.EXIT_RUNTIME


# ----------------------------------------------------------------------------
# sample

def test_sample_answers_every_stdin_prompt(lm_workdir):
  lines = [b"the c", b"\xffthe", b"", OVER_LONG, b"zzzQQQ", b"the cat\r"]
  done = _run(["-c", SAMPLE_MAIN, f"--workdir={lm_workdir}", "--prompt=-",
               "--length=8", "--temperature=0"], b"\n".join(lines))
  err = done.stderr.decode()
  assert done.returncode == 0, err
  out = done.stdout.decode().split("\n")
  assert len(out) == len(lines) + 1 and out[-1] == ""
  assert out[0].startswith("the c") and out[5].startswith("the cat")
  assert out[1].startswith("the") and out[3] == ""
  assert all(len(out[i]) >= 8 for i in (0, 1, 2, 4, 5))
  assert err.splitlines() == [
      "line 2: not valid UTF-8 (first bad byte at offset 0); 1 undecodable byte "
      "sequence(s) read as U+FFFD; not in the vocabulary, dropped: ['\ufffd']",
      f"line 4: longer than {line_input.MAX_LINE_BYTES} bytes "
      f"({line_input.MAX_LINE_BYTES + 2} with its line end); skipped",
      "line 5: not in the vocabulary, dropped: ['Q', 'z']; nothing left of the "
      "prompt: starting a new sentence"], err


def test_sample_prompt_flag_outside_the_vocabulary(lm_workdir, capsys):
  flags_ = types.SimpleNamespace(workdir=str(lm_workdir), length=6,
                                 temperature=0.0, seed=0, step=None, replica=None,
                                 prompt="the \udcffcQ")   # argv's b'\xff'
  sample_lib._run(flags_)  # pylint: disable=protected-access
  out, err = capsys.readouterr()
  assert out.startswith("the c") and len(out) == len("the c") + 6 + 1
  assert err == ("prompt: not valid UTF-8 (first bad byte at offset 4); 1 "
                 "undecodable byte sequence(s) read as U+FFFD; not in the "
                 "vocabulary, dropped: ['Q', '\ufffd']\n")


def test_word_prompts_read_unknown_words_as_unk():
  config = ptb_config.get_config()
  vocab = input_pipeline.Vocabulary(["the", "cat", "<eos>", "<unk>"])
  assert sample_lib.prompt_ids("the dog ☃ cat", config, vocab) == (
      [0, 3, 3, 1], "not in the vocabulary, read as <unk>: ['dog', '☃']", False)
  assert sample_lib.prompt_ids("   ", config, vocab) == ([2], "", True)
  long = sample_lib.prompt_ids("the " * (sample_lib.MAX_PROMPT_TOKENS + 5),
                               config, vocab)
  assert len(long.ids) == sample_lib.MAX_PROMPT_TOKENS
  assert long.note == (f"prompt cut from {sample_lib.MAX_PROMPT_TOKENS + 5} to "
                       f"its last {sample_lib.MAX_PROMPT_TOKENS} tokens")
  no_unk = input_pipeline.Vocabulary(["the", "cat", "<eos>"])
  assert sample_lib.prompt_ids("dog", config, no_unk) == (
      [2], "not in the vocabulary, dropped: ['dog']; nothing left of the "
      "prompt: starting a new sentence", True)
  assert sample_lib.decode(["the", "<eos>", "cat"], config, one_line=True) == (
      "the <eos> cat")
  assert sample_lib.encode_prompt("the cat", config, vocab) == [0, 1]
