"""The offline parallel corpus (gettext catalogs), the subword vocabulary,
BLEU, and an NMT smoke run on fixture catalogs written in tmp."""

import json
import os
import re
import shutil

import numpy as np
import pytest

import train
from corpora import gettext_parallel as gp
from corpora import subwords
from experiments import translate
from experiments.configs import nmt as nmt_config
from tasks import nmt

VERBS = [("open", "ouvrir"), ("close", "fermer"), ("save", "enregistrer"),
         ("delete", "supprimer"), ("print", "imprimer"), ("copy", "copier"),
         ("move", "déplacer"), ("rename", "renommer"), ("show", "afficher"),
         ("hide", "masquer")]
NOUNS = [("file", "le fichier"), ("folder", "le dossier"), ("window", "la fenêtre"),
         ("page", "la page"), ("image", "l'image"), ("message", "le message"),
         ("document", "le document"), ("list", "la liste"), ("table", "la table"),
         ("key", "la clé")]
ADJECTIVES = [("", ""), ("new ", " nouveau"), ("old ", " ancien")]


def _pairs():
  for (v_en, v_fr) in VERBS:
    for (n_en, n_fr) in NOUNS:
      for (a_en, a_fr) in ADJECTIVES:
        yield f"{v_en.capitalize()} the {a_en}{n_en}", f"{v_fr.capitalize()} {n_fr}{a_fr}"


def write_fixture(root):
  """Two fr catalogs (one latin-1, with markup, accelerators, contexts,
  plurals, placeholders, duplicates) and one de catalog."""
  pairs = list(_pairs())
  first = dict(pairs[:200])
  first.update({
      "menu\x04_Quit": "_Quitter",                      # context + accelerator
      "One file\x00%d files": "Un fichier\x00%d fichiers",  # plural with %d
      "Cannot open %s": "Impossible d'ouvrir %s",       # placeholder
      "<b>Bold</b> text": "Texte en <b>gras</b>",       # markup
      "Usage:\n  prog [options]": "Utilisation :\n  prog [options]",
      "LC_ALL is set": "LC_ALL est défini",             # identifier
      "Linux": "Linux",                                 # copy
      "Untranslated": "",
  })
  gp.write_mo(os.path.join(root, "share/locale/fr/LC_MESSAGES/app.mo"), first)
  second = dict(pairs[150:])
  second["&Edit the page"] = "Édit&er la page"
  second["Open the file"] = "Ouvrir ce fichier"        # a second translation
  gp.write_mo(os.path.join(root, "pkg/locale/fr_FR/LC_MESSAGES/pkg.mo"), second,
              charset="latin-1")
  gp.write_mo(os.path.join(root, "share/locale/fr_CA@x/LC_MESSAGES/no.mo"),
              {"Ignored": "Ignoré"})
  gp.write_mo(os.path.join(root, "share/locale/de/LC_MESSAGES/app.mo"),
              {"Open the file": "Datei öffnen"})
  return root


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory):
  return str(write_fixture(tmp_path_factory.mktemp("catalogs")))


def test_mo_round_trip_with_charsets(tmp_path):
  messages = {"ctx\x04Save": "Enregistrer", "Café": "Café",
              "One\x00Many": "Un\x00Plusieurs"}
  for charset in ("utf-8", "latin-1"):
    path = str(tmp_path / f"{charset}.mo")
    gp.write_mo(path, messages, charset=charset)
    got_charset, pairs, failed = gp.read_mo(path)
    assert got_charset == charset and failed == 0
    assert dict(pairs) == messages
  (tmp_path / "bad.mo").write_bytes(b"not a catalog at all")
  with pytest.raises(ValueError, match="not a .mo file"):
    gp.read_mo(str(tmp_path / "bad.mo"))


@pytest.mark.parametrize("msgid, msgstr, expected", [
    ("menu\x04_Open", "_Ouvrir", ("Open", "Ouvrir")),
    ("One file\x00Many files", "Un fichier\x00Des fichiers", ("One file", "Un fichier")),
    ("Save _As…", "Enregistrer _sous…", ("Save As…", "Enregistrer sous…")),
    ("&File", "&Fichier", ("File", "Fichier")),
    ("Tom && Jerry", "Tom && Jerry le chat", ("Tom & Jerry", "Tom & Jerry le chat")),
    ("Open (_O)", "Ouvrir (_O)", ("Open", "Ouvrir")),
    ("<b>Bold</b> &amp; text", "<i>Gras</i> et texte", ("Bold & text", "Gras et texte")),
    ("Cannot open %s", "Impossible d'ouvrir %s", "placeholder"),
    ("Value %(name)s", "Valeur %(name)s", "placeholder"),
    ("Hello {user}", "Bonjour {user}", "placeholder"),
    ("Line one\nLine two", "Ligne un\nLigne deux", "layout"),
    ("LC_ALL not set", "LC_ALL non défini", "underscore"),
    ("12:30", "12 h 30", "no_letters"),
    ("Linux", "Linux", "copy"),
    ("Yes", "", "untranslated"),
    (" ".join(["word"] * 51), " ".join(["mot"] * 51), "length"),
    ("OK", "D'accord, c'est très bien ainsi et merci", "ratio"),
])
def test_cleaning_rules(msgid, msgstr, expected):
  _assert_cleaned(gp.clean_pair(msgid, msgstr), expected)


def _assert_cleaned(result, expected):
  """expected: the clean (source, target) pair, or the reason it is dropped."""
  pair, why = result
  if isinstance(expected, tuple):
    assert pair == expected and why is None
  else:
    assert pair is None and why == expected


@pytest.mark.parametrize("msgid, msgstr, expected", [
    ("Copy %1$s to %2$s", "Copier %2$s vers %1$s",
     ("Copy <1> to <2>", "Copier <2> vers <1>")),
    ("Cannot open %s: %s", "Impossible d'ouvrir %s : %s",
     ("Cannot open <1>: <2>", "Impossible d'ouvrir <1> : <2>")),
    ("File {0} in {1}", "Fichier {1} : {0}", ("File <1> in <2>", "Fichier <2> : <1>")),
    ("{} of {}", "{} sur {}", ("<1> of <2>", "<1> sur <2>")),
    ("100%% of %(name)s", "%(name)s à 100 %%", ("100% of <1>", "<1> à 100 %")),
    ("Run $CMD or ${X}", "Lancez ${X} ou $CMD", ("Run <1> or <2>", "Lancez <2> ou <1>")),
    ("Value %s", "Valeur %d", ("Value <1>", "Valeur <1>")),
    ("50% of {n}", "50 % de {n}", ("50% of <1>", "50 % de <1>")),
    ("Copy %s", "Copier", "placeholder_mismatch"),
    ("Hello {user}", "Bonjour {name}", "placeholder_mismatch"),
    ("%s", "%s", "no_letters"),
    ("%s: %s", "%s: %s", "no_letters"),
])
def test_kept_placeholders_are_numbered_by_argument(msgid, msgstr, expected):
  _assert_cleaned(gp.clean_pair(msgid, msgstr, placeholders="keep"), expected)
  assert gp.clean_pair(msgid, msgstr)[1] in ("placeholder", "no_letters")


def test_collect_finds_cleans_dedupes_and_splits(catalogs):
  paths = gp.find_catalogs("fr", [catalogs])
  assert [os.path.basename(p) for p in paths] == ["pkg.mo", "app.mo"]  # path order
  assert not any("fr_CA" in p for p in paths)
  splits, report = gp.collect("fr", [catalogs])
  everything = dict(p for s in splits.values() for p in s)
  assert len(everything) == sum(len(s) for s in splits.values())  # no source twice
  assert len(everything) == 300 + 4  # + Quit, Bold text, Edit the page, One file
  assert everything["One file"] == "Un fichier"   # the singular of a plural
  assert everything["Bold text"] == "Texte en gras"
  assert everything["Quit"] == "Quitter"
  assert everything["Edit the page"] == "Éditer la page"
  # A 1-1 tie between two translations: the first catalog in path order wins.
  assert everything["Open the file"] == "Ouvrir ce fichier"
  for split, pairs in splits.items():
    assert pairs == sorted(pairs)
    assert all(gp.split_of(source) == split for source, _ in pairs)
    assert pairs, split
  assert report["dropped"]["placeholder"] == 1
  assert report["dropped"]["duplicate"] == 51
  assert report["num_catalogs"] == 2
  assert {c["charset"] for c in report["catalogs"]} == {"utf-8", "latin-1"}
  assert report["splits"] == {s: len(p) for s, p in splits.items()}
  assert gp.collect("fr", [catalogs])[0] == splits    # deterministic
  kept, report = gp.collect("fr", [catalogs], placeholders="keep")
  assert "placeholder" not in report["dropped"] and report["placeholders"] == "keep"
  assert dict(p for s in kept.values() for p in s)["Cannot open <1>"] == \
      "Impossible d'ouvrir <1>"
  for split, pairs in splits.items():   # every other pair keeps its split
    assert set(pairs) <= set(kept[split])
  with pytest.raises(ValueError, match="placeholders"):
    gp.collect("fr", [catalogs], placeholders="strip")


def test_builder_round_trip_and_metadata(catalogs, tmp_path, monkeypatch):
  monkeypatch.setenv(gp.ENV_ROOTS, catalogs)
  expected, _ = gp.collect("fr", [catalogs])
  for split in gp.SPLITS:
    assert gp.load_pairs("gettext_parallel/en_fr", split,
                         data_dir=str(tmp_path)) == expected[split]
  kept, _ = gp.collect("fr", [catalogs], placeholders="keep")
  assert gp.load_pairs("gettext_parallel/en_fr_keep_placeholders", "train",
                       data_dir=str(tmp_path)) == kept["train"]
  # A corpus built by other cleaning code is rebuilt on its next read.
  builder = gp.builder_for("gettext_parallel/en_fr", str(tmp_path))
  assert builder.info.metadata["building_code"] == gp.building_code()
  monkeypatch.setattr(gp, "building_code", lambda: "other code")
  assert gp.load_pairs("gettext_parallel/en_fr", "test",
                       data_dir=str(tmp_path)) == expected["test"]
  assert gp.builder_for("gettext_parallel/en_fr", str(tmp_path)
                        ).info.metadata["building_code"] == "other code"
  info = gp.describe("gettext_parallel", data_dir=str(tmp_path))
  assert info["num_catalogs"] == 2 and info["splits"]["train"] == len(expected["train"])
  with pytest.raises(ValueError, match="no config"):
    gp.load_pairs("gettext_parallel/en_it", "train", data_dir=str(tmp_path))


def test_builder_without_catalogs_is_a_clear_error(tmp_path, monkeypatch):
  monkeypatch.setenv(gp.ENV_ROOTS, str(tmp_path / "nothing"))
  with pytest.raises(ValueError, match="GETTEXT_CATALOG_ROOTS"):
    gp.load_pairs("gettext_parallel/en_es", "train", data_dir=str(tmp_path))


def test_subword_vocabulary_is_trained_once_and_round_trips(tmp_path):
  pairs = list(_pairs())
  vocab = subwords.load_or_train(pairs, 80, str(tmp_path), "fixture/en_fr")
  assert vocab.size <= 80
  files = os.listdir(tmp_path / "subwords")
  again = subwords.load_or_train(pairs, 80, str(tmp_path), "fixture/en_fr")
  assert os.listdir(tmp_path / "subwords") == files
  assert again.model_proto == vocab.model_proto
  text = "Ouvrir le nouveau fichier"
  ids = vocab.encode(text)
  assert min(ids) > 2 and vocab.decode(ids + [2, 5, 6]) == text
  assert vocab.unknown("Ouvrir ☃") == ["☃"]


def test_bleu_and_bleu_by_length():
  refs = ["le chat est sur le tapis", "bonjour", "un deux trois quatre cinq six sept"]
  perfect = nmt.corpus_scores(refs, refs)
  assert perfect["bleu"] == pytest.approx(100.0)
  assert nmt.corpus_scores(["x y z", "a", "b"], refs)["bleu"] < 5
  rows = nmt.scores_by_length(["a b", "a b c d e f g h i j k", "x"],
                              refs, refs)
  assert [r["words"] for r in rows] == ["1-2", "10-14"]
  assert rows[0]["sentences"] == 2
  # A kept placeholder counts as one word in BLEU (13a would make '<1>' three).
  import sacrebleu  # pylint: disable=g-import-not-at-top
  refs = ["Impossible d'ouvrir « <1> » : <2>", "Copier <1> vers <2>"]
  hyps = ["Impossible de lire « <1> » : <2>", "Copier <2> vers <1>"]
  as_words = lambda texts: [re.sub(r"<(\d)>", r"W\1", t) for t in texts]
  expected = sacrebleu.corpus_bleu(as_words(hyps), [as_words(refs)]).score
  assert nmt.corpus_scores(hyps, refs)["bleu"] == pytest.approx(expected, abs=0.01)
  assert expected < sacrebleu.corpus_bleu(hyps, [refs]).score - 10


def tiny_config(tmp_path):
  """A 6-step encoder-decoder run on the fixture catalogs (set gp.ENV_ROOTS
  to write_fixture's folder to train it), data under tmp_path/data."""
  config = nmt_config.get_config("encdec")
  config.data_dir = str(tmp_path / "data")
  config.vocab_size = 80
  config.hidden_size = 16
  config.embed_size = 8
  config.batch_size = 16
  config.eval_batch_size = 32
  config.num_train_steps = 6
  config.eval_every_steps = 6
  config.log_every_steps = 3
  config.max_tokens = 10
  config.max_decode_len = 12
  config.beam_size = 2
  config.progress_bar = False
  return config


def test_nmt_smoke_training_translate_and_bleu(catalogs, tmp_path, monkeypatch):
  monkeypatch.setenv(gp.ENV_ROOTS, catalogs)
  config = tiny_config(tmp_path)
  workdir = tmp_path / "run"
  summary = train.train_and_evaluate(config, str(workdir))
  assert summary["step"] == 6
  vocab = nmt.vocabulary(config)
  assert (workdir / nmt.SUBWORDS_FILE).read_bytes() == vocab.model_proto
  assert summary["metrics"]["test"]["sequences"] > 0
  report = translate.evaluate_and_write(str(workdir))
  saved = json.loads((workdir / "bleu_test.json").read_text())
  assert set(saved["decodes"]) == {"greedy", "beam2"}
  assert saved["decodes"]["greedy"]["sentences"] == report["sentences"]
  hyps = (workdir / "hypotheses_test_greedy.txt").read_text().splitlines()
  assert len(hyps) == report["sentences"]
  shutil.rmtree(tmp_path / "data" / "subwords")  # the run's own copy is read
  loaded = translate.load(str(workdir))
  assert loaded.source_vocab.model_proto == vocab.model_proto
  assert not (tmp_path / "data" / "subwords").exists()
  lines = ["Open the new file", "", "   ", "Open ☃ the file",
           " ".join(["open the file"] * 20)]
  results = translate.translate_lines(loaded, lines)
  assert len(results) == len(lines)
  assert results[1].text == "" and results[2].text == ""
  assert "empty" in results[1].note
  assert "☃" in results[3].note
  assert "cut" in results[4].note
  assert all(isinstance(r.text, str) and np.isfinite(r.log_prob) for r in results)
  # BLEU by length as Markdown (BLEU and chrF tables) and a PNG.
  from experiments import plot_bleu_by_length  # pylint: disable=g-import-not-at-top
  reports = [plot_bleu_by_length.read(str(workdir), "test")]
  table = plot_bleu_by_length.markdown(reports)
  assert "| RNNencdec (no attention) | beam2 |" in table
  assert re.search(r"\| BLEU \d+-\d+ words \(n=\d+\)", table)
  assert re.search(r"\| chrF \d+-\d+ words \(n=\d+\)", table)
  plot_bleu_by_length.plot(reports, "beam2", str(tmp_path / "by_length.png"))
  assert (tmp_path / "by_length.png").stat().st_size > 1000
  with pytest.raises(ValueError, match="decode: .* not 'beam9'"):
    plot_bleu_by_length.plot(reports, "beam9", str(tmp_path / "x.png"))


def test_translate_feeds_placeholders_as_tokens_and_restores_them(monkeypatch):
  """A *_keep_placeholders model sees '<k>' and the user gets '%2$s' back;
  the decoder is replaced by one that reverses the word order."""
  seen = []

  def reverse_words(model, params, source_vocab, target_vocab, texts, **kwargs):
    del model, params, source_vocab, target_vocab, kwargs
    seen.extend(texts)
    return [translate.decoding.Translation(" ".join(t.split()[::-1]), [], 0.0, 0.0)
            for t in texts]

  monkeypatch.setattr(translate.decoding, "translate_texts", reverse_words)
  config = nmt_config.get_config("encdec")
  config.dataset = "gettext_parallel/en_fr_keep_placeholders"
  loaded = translate.Loaded(config, None, None, None, None, 0)
  lines = ["Copy %1$s to %2$s", "50% of {name}", "100%% of %s", "No placeholder", ""]
  results = translate.translate_lines(loaded, lines)
  assert seen == ["Copy <1> to <2>", "50% of <1>", "100% of <1>", "No placeholder", ""]
  assert [r.text for r in results] == [
      "%2$s to %1$s Copy", "{name} of 50%", "%s of 100%%", "placeholder No", ""]
  assert not any(r.note for r in results)
  config.dataset = "gettext_parallel/en_fr"        # trained without: as is
  seen.clear()
  assert translate.translate_lines(loaded, lines[:1])[0].text == "%2$s to %1$s Copy"
  assert seen == lines[:1]
  assert gp.tokens_to_placeholders("<1> et <3>", {1: "%s"}) == "%s et <3>"


def test_length_robustness_against_sacrebleu_and_a_perfect_run():
  from experiments import plot_bleu_by_length as pbl  # pylint: disable=g-import-not-at-top
  import sacrebleu  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  words = [f"w{i}" for i in range(40)]
  sentence = lambda n: " ".join(rng.choice(words, n))
  sources = [sentence(4) for _ in range(30)] + [sentence(12) for _ in range(20)]
  refs = [sentence(len(s.split())) for s in sources]
  half_wrong = [r if i < 30 else " ".join(r.split()[:6] + ["x"] * 6)
                for i, r in enumerate(refs)]
  result = pbl.length_robustness(sources, {"base": half_wrong, "perfect": refs},
                                 refs, short=(3, 9), long=(10, 50), samples=50)
  base, perfect = result["runs"]
  assert (result["short"], result["long"]) == (30, 20)
  assert base["bleu_short"] == pytest.approx(100.0)
  assert base["bleu_long"] == pytest.approx(
      sacrebleu.corpus_bleu(half_wrong[30:], [refs[30:]]).score)
  assert perfect["kept"] == (1.0, 1.0, 1.0) and base["growth"] is None
  assert perfect["growth"][0] == pytest.approx(100.0 / base["bleu_long"], rel=0.2)
  assert "| perfect | 100.0 | 100.0 | 1.00 [1.00, 1.00] |" in pbl.robustness_markdown(result)
  with pytest.raises(ValueError, match="must both hold sources"):
    pbl.length_robustness(sources, {"base": refs}, refs, long=(20, 50), samples=5)
