"""experiments.baselines: the most-frequent-tag baseline against hand-computed
answers, the TF-IDF baseline on a tiny fixture (where scikit-learn is
installed), and the command's table, JSON and one-line errors."""

import json
import sys
import types

import pytest

from corpora import sentiment as sentiment_data
from corpora import ud
from experiments import baselines
from experiments import cli
from tests import test_text_tasks as text_tasks


def _sentences(*tagged: str) -> list[ud.TaggedSentence]:
  """'the/DET dog/NOUN' -> TaggedSentence(['the', 'dog'], ['DET', 'NOUN'])."""
  out = []
  for sentence in tagged:
    pairs = [item.rsplit("/", 1) for item in sentence.split()]
    out.append(ud.TaggedSentence([w for w, _ in pairs], [t for _, t in pairs]))
  return out


# Tag counts: NOUN 5, VERB 5 (a tie: NOUN overall), DET 3, PUNCT 2, PRON 2,
# AUX 1, ADP 1. 'run' is NOUN once, VERB 3 times; 'can' NOUN once, AUX once.
TRAIN = _sentences("the/DET dog/NOUN runs/VERB", "the/DET run/NOUN ./PUNCT",
                   "dogs/NOUN run/VERB ./PUNCT", "they/PRON run/VERB",
                   "a/DET can/NOUN", "can/AUX run/VERB",
                   "he/PRON talks/VERB about/ADP hats/NOUN")
VALID = _sentences("she/PRON walks/VERB")
TEST = _sentences("the/DET can/NOUN runs/VERB", "cats/NOUN run/VERB ./PUNCT",
                  "she/PRON walks/VERB")
SPLITS = {"train": TRAIN, "valid": VALID, "test": TEST}


def test_tagger_tables_and_ties():
  tagger = baselines.fit_tagger(TRAIN)
  assert tagger.default == "NOUN"                        # NOUN 5 = VERB 5
  assert tagger.by_word["run"] == "VERB" and tagger.by_word["can"] == "AUX"
  assert tagger.by_suffix["he"] == "DET"                 # the/DET, he/PRON: a tie
  assert tagger.by_suffix["s"] == "NOUN"                 # runs, talks; dogs, hats
  assert tagger.by_suffix["ats"] == "NOUN"
  assert [baselines.tag_word(tagger, w) for w in ("run", "cats", "walks")] == [
      "VERB", "NOUN", "NOUN"]
  assert [baselines.tag_word(tagger, w, suffixes=True)
          for w in ("run", "cats", "walks", "she", "xyz")] == [
              "VERB", "NOUN", "VERB", "DET", "NOUN"]
  with pytest.raises(ValueError, match="no tagged words"):
    baselines.fit_tagger([])


def test_most_frequent_tag_scores_by_hand():
  # test: the can runs: DET, AUX (gold NOUN), VERB -> 2 of 3; cats run . -> 3
  # of 3 (cats unseen: NOUN); she walks (unseen) -> NOUN NOUN, 0 of 2.
  # With suffixes: cats -ats NOUN, walks -alks VERB, she -he DET: 6 of 8.
  result = baselines.tagging_baseline(SPLITS)["baselines"]
  plain, suffix = result["most_frequent_tag"], result["most_frequent_tag_suffix"]
  assert plain["test"] == {"accuracy": 5 / 8, "accuracy_unseen": 1 / 3,
                           "unseen_rate": 3 / 8, "tokens": 8, "unseen": 3}
  assert suffix["test"] == {**plain["test"], "accuracy": 6 / 8,
                            "accuracy_unseen": 2 / 3}
  assert plain["valid"]["accuracy"] == 0.0 and suffix["valid"]["accuracy"] == 0.5


def _flags(tmp_path, **overrides):
  return types.SimpleNamespace(**{"task": "tagging", "dataset": "ud_he",
                                  "data_dir": None, "out": str(tmp_path / "r.json"),
                                  **overrides})


def test_tagging_command_prints_a_table_and_writes_json(tmp_path, monkeypatch,
                                                        capsys):
  split_names = {"train": "train", "validation": "valid", "test": "test"}
  read = []

  def read_tagging(treebank, split, data_dir=None):
    read.append((treebank, split, data_dir))
    return SPLITS[split_names[split]]
  monkeypatch.setattr(baselines.ud, "read_tagging", read_tagging)
  baselines._run(_flags(tmp_path))  # pylint: disable=protected-access
  lines = capsys.readouterr().out.splitlines()
  assert lines[2].startswith("| ud_he | most_frequent_tag | 0.00 | 0.00 | 62.50 | "
                             "33.33 | ")
  assert lines[3].startswith("| ud_he | most_frequent_tag_suffix | 50.00 | 50.00 | "
                             "75.00 | 66.67 | ")
  assert {(t, s) for t, s, _ in read} == {("he", "train"), ("he", "validation"),
                                          ("he", "test")}
  result = json.loads((tmp_path / "r.json").read_text())
  assert result["task"] == "tagging" and result["dataset"] == "ud_he"
  assert result["baselines"]["most_frequent_tag"]["test"]["accuracy"] == 5 / 8
  assert result["settings"]["default_tag"] == "NOUN"
  assert result["wall_seconds"] >= 0


def test_a_dataset_of_another_task_is_a_usage_error(tmp_path):
  with pytest.raises(cli.UsageError, match="^--dataset: for --task=sentiment "
                     "expected one of imdb, rt, got 'ud_he'$") as usage:
    baselines._run(_flags(tmp_path, task="sentiment"))  # pylint: disable=protected-access
  assert cli.exit_code(usage.value) == cli.EXIT_USAGE


def test_without_scikit_learn_one_line_names_the_requirements(tmp_path, monkeypatch,
                                                              capsys):
  monkeypatch.setitem(sys.modules, "sklearn", None)   # import sklearn fails
  with pytest.raises(SystemExit) as exited:
    baselines._run(_flags(tmp_path, task="sentiment", dataset="rt"))  # pylint: disable=protected-access
  assert exited.value.code == cli.EXIT_RUNTIME
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and err.startswith("error: the TF-IDF baseline needs "
                                                 "scikit-learn")
  assert "pip install -r requirements-bench.txt" in err
  assert not (tmp_path / "r.json").exists()


def test_tfidf_logistic_regression_on_a_tiny_corpus(tmp_path, monkeypatch, capsys):
  pytest.importorskip("sklearn")

  def read_split(name, split, data_dir=None):
    del name, data_dir
    return [sentiment_data.Example(t, y) for t, y in text_tasks.REVIEWS[split]]
  monkeypatch.setattr(baselines.sentiment_data, "read_split", read_split)
  baselines._run(_flags(tmp_path, task="sentiment", dataset="rt"))  # pylint: disable=protected-access
  result = json.loads((tmp_path / "r.json").read_text())
  settings = result["settings"]
  by_c = settings["valid_accuracy_by_C"]
  assert set(by_c) == {f"{c:g}" for c in baselines.C_GRID}
  assert settings["C"] == min(c for c in baselines.C_GRID
                              if by_c[f"{c:g}"] == max(by_c.values()))
  scores = result["baselines"]["tfidf_logistic_regression"]
  assert scores["valid"]["accuracy"] == max(by_c.values())
  assert scores["valid"]["examples"] == 2 and scores["test"]["examples"] == 3
  # Words in >= 2 training texts: great, awful, film, dull (the tokeniser
  # drops '<br />'): 'great new new film' positive, 'dull' and 'awful' not.
  assert settings["features"] == 4
  assert scores["test"]["accuracy"] == 1.0
  out = capsys.readouterr().out.splitlines()
  assert out[2].startswith(f"| rt | tfidf_logistic_regression | {settings['C']:g} | ")
