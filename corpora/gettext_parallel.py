"""A parallel corpus from the gettext catalogs on this machine (offline).

Software translations ship as compiled gettext catalogs (.mo files): each
maps an English message (msgid) to its translation (msgstr). Gathering them
is how the OPUS GNOME, KDE and Ubuntu corpora were made. This builder reads
every catalog of the target language it finds under

  /usr/share, /usr/local/share (e.g. /usr/share/locale/fr/LC_MESSAGES/*.mo,
  /usr/share/vim/vim90/lang/fr/LC_MESSAGES/vim.mo) and the installed Python
  packages (site-packages/<pkg>/locale/fr_FR/LC_MESSAGES/*.mo),

or under the directories in $GETTEXT_CATALOG_ROOTS (os.pathsep-separated), or
the builder's `roots` argument. A catalog counts when its directory is
<lang>/LC_MESSAGES or <lang>_<REGION>/LC_MESSAGES (e.g. fr, fr_FR; not
fr_CA@x). Configs: en_fr (default), en_de, en_es, and the same three with
placeholder messages kept (en_fr_keep_placeholders, ...; rule 4 below).

WHICH catalogs exist depends on the machine: a fresh CI image with fewer
packages (or without the `locales`-style packages) finds far fewer pairs.
The list of catalogs read, each one's charset, entry count and how many pairs
it contributed, and the count dropped by every cleaning rule, are stored in
the built dataset's metadata (`info.metadata['catalogs']`, `['dropped']`,
`['splits']`) and printed by `describe()`; a later read warns when the
catalogs on the machine no longer match the ones the corpus was built from,
and rebuilds a corpus that other code built (`building_code`: a changed
cleaning rule takes effect on the next read).

Cleaning, in order (a pair failing a rule is dropped and counted under
that rule's name):
  1. context: 'ctx\\x04msgid' keys lose the context part.
  2. plural: 'singular\\x00plural' keys keep the singular, msgstr form 0.
  3. 'untranslated': empty msgstr; the header entry (empty msgid) is skipped.
  4. 'placeholder': printf (%s, %d, %1$s, %(name)s, %-10s), brace ({0},
     {name}) or shell ($1, ${x}) placeholders on either side. In the
     *_keep_placeholders configs (en_fr_keep_placeholders, ...) such pairs
     are kept instead: every placeholder becomes a numbered token <1>, <2>,
     ... in order of first appearance in the English text, the translation's
     placeholders get the same numbers by argument (position %2$s / {1},
     name %(name)s / {name} / ${name}, or order for plain %s / {}), and '%%'
     becomes '%'; 'placeholder_mismatch': the two sides refer to different
     arguments. E.g. 'Copy %1$s to %2$s' / 'Copier %2$s vers %1$s' ->
     'Copy <1> to <2>' / 'Copier <2> vers <1>'. These messages add most of
     the corpus's long sentences.
  5. markup: tags such as <b>..</b> are stripped and entities (&amp;)
     unescaped; 'layout': text with tabs, line breaks or runs of spaces
     (help screens, tables).
  6. accelerators: '(_F)' / '(&F)' suffixes removed; a single '_' at the
     start of a word ('_Open', 'Save _As') or a single '&' before a letter
     ('Sa&ve') removed, '&&' -> '&'; 'underscore': any '_' left
     (identifiers such as LC_ALL or file_name, and the rarer mid-word GTK
     mnemonics such as 'Sa_ve').
  7. 'no_letters': a side without letters; 'copy': translation identical
     to the source (mostly untranslated names and commands).
  8. 'length': a side of more than max_words words (default 50);
     'ratio': one side more than 3 times as many words as the other (when
     the longer has over 5).
  9. 'duplicate': the same English text again; the translation kept is the
     most frequent one across catalogs (ties: the first catalog in sorted
     path order).
Split: by a hash of the English text (sha1 mod 1000): < 30 validation,
< 80 test, else train (about 3% / 5% / 92%), so a pair keeps its split when
catalogs come and go. Near-duplicates ('Open' / 'Open...') can still fall in
different splits, as in the OPUS software corpora.

Each example: {'source': English, 'target': translation, 'index': int32},
sorted by source within a split. Written as ArrayRecord through TFDS, read
with `load_pairs`, which checks count and sha256 against the metadata and
rebuilds once if the files are damaged.
"""

from __future__ import annotations

import collections
import hashlib
import html
import os
import re
import shutil
import site
import struct
import sys
import sysconfig
from typing import Iterable, Sequence

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from corpora import store
from models.checks import check_one_of

LANGUAGES = ("fr", "de", "es")
ENV_ROOTS = "GETTEXT_CATALOG_ROOTS"
MAX_WORDS = 50
SPLIT_THRESHOLDS = (("validation", 30), ("test", 80))   # of sha1 % 1000
SPLITS = ("train", "validation", "test")

_MO_MAGIC_LE, _MO_MAGIC_BE = 0x950412de, 0xde120495


# ----------------------------------------------------------------------------
# .mo files.

def _charset(header: bytes) -> str:
  match = re.search(rb"charset=([A-Za-z0-9_.:-]+)", header)
  return match.group(1).decode("ascii") if match else "utf-8"


def read_mo(path: str) -> tuple[str, list[tuple[str, str]], int]:
  """-> (charset, [(msgid, msgstr)] decoded, entries that failed to decode).

  Raw keys: context as 'ctx\\x04msgid', plurals as 'one\\x00many' with
  msgstr forms joined by '\\x00'. Decoding uses the header's charset; an
  entry that does not decode in it is tried as UTF-8, then skipped.
  """
  with open(path, "rb") as f:
    data = f.read()
  if len(data) < 20:
    raise ValueError(f"{path}: too short for a .mo file")
  magic = struct.unpack("<I", data[:4])[0]
  if magic == _MO_MAGIC_LE:
    order = "<"
  elif magic == _MO_MAGIC_BE:
    order = ">"
  else:
    raise ValueError(f"{path}: not a .mo file (magic {magic:#x})")
  _, count, ids_at, strs_at = struct.unpack(order + "4I", data[4:20])

  def entry(table: int, i: int) -> bytes:
    length, offset = struct.unpack(order + "2I", data[table + 8 * i:table + 8 * i + 8])
    if offset + length > len(data):
      raise ValueError(f"{path}: entry {i} points past the end of the file")
    return data[offset:offset + length]

  raw = [(entry(ids_at, i), entry(strs_at, i)) for i in range(count)]
  header = next((s for k, s in raw if k == b""), b"")
  charset = _charset(header)
  pairs, failed = [], 0
  for key, value in raw:
    if key == b"":
      continue
    decoded = None
    for encoding in (charset, "utf-8"):
      try:
        decoded = (key.decode(encoding), value.decode(encoding))
        break
      except (UnicodeDecodeError, LookupError):
        continue
    if decoded is None:
      failed += 1
    else:
      pairs.append(decoded)
  return charset, pairs, failed


def write_mo(path: str, messages: dict[str, str], charset: str = "utf-8") -> None:
  """Writes a .mo catalog (for tests and fixtures); keys as in `read_mo`."""
  entries = {"": f"Content-Type: text/plain; charset={charset}\n", **messages}
  keys = sorted(entries)
  ids = [k.encode(charset) for k in keys]
  strs = [entries[k].encode(charset) for k in keys]
  count = len(keys)
  ids_at = 28
  strs_at = ids_at + 8 * count
  data_at = strs_at + 8 * count
  tables, blob = [], b""
  for group in (ids, strs):
    table = []
    for item in group:
      table.append((len(item), data_at + len(blob)))
      blob += item + b"\0"
    tables.append(table)
  out = struct.pack("<7I", _MO_MAGIC_LE, 0, count, ids_at, strs_at, 0, data_at)
  for table in tables:
    out += b"".join(struct.pack("<2I", n, o) for n, o in table)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "wb") as f:
    f.write(out + blob)


# ----------------------------------------------------------------------------
# Finding catalogs.

def default_roots() -> list[str]:
  """$GETTEXT_CATALOG_ROOTS, else /usr/share, /usr/local/share and the
  Python package directories."""
  env = os.environ.get(ENV_ROOTS)
  if env:
    return [p for p in env.split(os.pathsep) if p]
  roots = ["/usr/share", "/usr/local/share"]
  packages = set(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
  packages.update(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
  packages.update(p for p in sys.path if p.endswith("-packages"))
  return roots + sorted(packages)


def find_catalogs(language: str, roots: Sequence[str]) -> list[str]:
  """Sorted .mo paths under roots in <language>[_REGION]/LC_MESSAGES."""
  pattern = re.compile(rf"^{re.escape(language)}(_[A-Z]{{2}})?$")
  found = set()
  for root in roots:
    if not os.path.isdir(root):
      continue
    for directory, subdirs, files in os.walk(root):
      if os.path.basename(directory) == "LC_MESSAGES":
        subdirs[:] = []
        if pattern.match(os.path.basename(os.path.dirname(directory))):
          found.update(os.path.realpath(os.path.join(directory, f))
                       for f in files if f.endswith(".mo"))
  return sorted(found)


def catalogs_fingerprint(paths: Iterable[str]) -> str:
  digest = hashlib.sha256()
  for path in paths:
    digest.update(f"{path}:{os.path.getsize(path)}\n".encode())
  return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------
# Cleaning.

_PRINTF = re.compile(r"%(\([^)]*\))?[-+ #0']*(\d+\$)?(\d+|\*)?(\.(\d+|\*))?"
                     r"(hh|h|ll|l|L|q|j|z|t|I64|I32)?[diouxXeEfFgGaAcspnSC]")
_BRACE = re.compile(r"\{[\w.:!\[\]]*\}")
_SHELL = re.compile(r"\$\{?\w")
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_ACCEL_SUFFIX = re.compile(r"\s*\((?:_|&)\w\)")
_LETTER = re.compile(r"[^\W\d_]")
# Kept placeholders: printf without the ' ' flag, so that '50% of' and
# '100 % de' are text, not the conversions '% o' and '% d'.
_ANY_PLACEHOLDER = re.compile(
    "(?P<percent>%%)|(?P<printf>" + _PRINTF.pattern.replace("[-+ #0']*", "[-+#0']*")
    + ")|(?P<brace>"
    + _BRACE.pattern + r")|(?P<shell>\$\{\w+\}|\$\w+)")
PLACEHOLDER_MODES = ("drop", "keep")
PLACEHOLDER_TOKEN = re.compile(r"<(\d+)>")   # what a kept placeholder becomes


def _has_placeholder(text: str) -> bool:
  return bool(_PRINTF.search(text) or _BRACE.search(text) or _SHELL.search(text))


def _strip_accelerator(text: str) -> str:
  text = _ACCEL_SUFFIX.sub("", text).replace("&&", "\0")
  if text.count("_") == 1:   # GTK: at a word start only (LC_ALL is a name)
    text = re.sub(r"(?<!\w)_(?=\w)", "", text)
  if text.count("&") == 1:   # Qt/KDE: anywhere in a word
    text = re.sub(r"&(?=\w)", "", text)
  return text.replace("\0", "&")


def _placeholder_key(match: re.Match, plain: list[int]) -> tuple:
  """The argument a placeholder refers to; plain[0] counts the %s / {} seen."""
  text = match.group()
  if match.group("printf"):
    printf = _PRINTF.fullmatch(text)
    if printf.group(1):
      return ("name", printf.group(1)[1:-1])
    if printf.group(2):
      return ("position", int(printf.group(2)[:-1]))
  elif match.group("brace"):
    field = re.split(r"[.:!\[]", text[1:-1])[0]
    if field.isdigit():
      return ("position", int(field) + 1)
    if field:
      return ("name", field)
  else:   # shell
    return ("name", text.strip("${}"))
  plain[0] += 1
  return ("position", plain[0])


def _placeholder_keys(text: str) -> list[tuple]:
  plain = [0]
  return [_placeholder_key(m, plain) for m in _ANY_PLACEHOLDER.finditer(text)
          if not m.group("percent")]


def _numbers_by_first_use(text: str) -> dict[tuple, int]:
  return {key: i + 1 for i, key in enumerate(dict.fromkeys(_placeholder_keys(text)))}


def _tokens_for(text: str, numbers: dict[tuple, int],
                originals: dict[int, str] | None = None) -> str:
  """Each placeholder -> '<number of its argument>', '%%' -> '%'; records
  the first placeholder string of each number in `originals`."""
  plain = [0]
  def token(match):
    if match.group("percent"):
      return "%"
    number = numbers[_placeholder_key(match, plain)]
    if originals is not None:
      originals.setdefault(number, match.group())
    return f"<{number}>"
  return _ANY_PLACEHOLDER.sub(token, text)


def number_placeholders(source: str, target: str) -> tuple[str, str] | None:
  """Placeholders -> <1>, <2>, ... numbered by first use in `source`, the
  same argument getting the same number on both sides; '%%' -> '%'.
  None when the two sides refer to different arguments."""
  if set(_placeholder_keys(source)) != set(_placeholder_keys(target)):
    return None
  numbers = _numbers_by_first_use(source)
  return _tokens_for(source, numbers), _tokens_for(target, numbers)


def placeholders_to_tokens(text: str) -> tuple[str, dict[int, str]]:
  """A message to translate with a *_keep_placeholders model -> (its
  training form, {number: the placeholder it stands for}); undo on the
  translation with `tokens_to_placeholders`."""
  originals: dict[int, str] = {}
  return _tokens_for(text, _numbers_by_first_use(text), originals), originals


def tokens_to_placeholders(text: str, originals: dict[int, str],
                           escape_percent: bool = False) -> str:
  """'<k>' -> originals[k] (left as is when k is unknown). escape_percent:
  the source was a printf format, so a literal '%' in the translation (the
  corpus holds '%%' as '%') becomes '%%' again."""
  if escape_percent:
    text = text.replace("%", "%%")
  return PLACEHOLDER_TOKEN.sub(
      lambda m: originals.get(int(m.group(1)), m.group()), text)


def clean_side(text: str, placeholders_numbered: bool = False
               ) -> tuple[str | None, str | None]:
  """One side -> (clean text, None) or (None, reason dropped).
  placeholders_numbered: `number_placeholders` already ran (so '100% of'
  is text, not a printf '% o')."""
  if not placeholders_numbered and _has_placeholder(text):
    return None, "placeholder"
  if _TAG.search(text):
    text = html.unescape(_TAG.sub("", text))
  text = text.strip()
  if "\t" in text or "\n" in text or "\r" in text or "   " in text:
    return None, "layout"
  text = _strip_accelerator(text)
  if "_" in text:
    return None, "underscore"
  text = " ".join(text.split())
  if not _LETTER.search(text):
    return None, "no_letters"
  return text, None


def clean_pair(msgid: str, msgstr: str, max_words: int = MAX_WORDS,
               placeholders: str = "drop"):
  """Raw catalog entry -> ((source, target), None) or (None, reason).

  placeholders: 'drop' pairs holding any, or 'keep' them as numbered tokens.
  """
  if "\x04" in msgid:
    msgid = msgid.split("\x04", 1)[1]
  if "\x00" in msgid:
    msgid = msgid.split("\x00", 1)[0]
    msgstr = msgstr.split("\x00", 1)[0]
  if not msgid.strip() or not msgstr.strip():
    return None, "untranslated"
  keep = placeholders == "keep"
  if keep and (_has_placeholder(msgid) or _has_placeholder(msgstr)):
    numbered = number_placeholders(msgid, msgstr)
    if numbered is None:
      return None, "placeholder_mismatch"
    msgid, msgstr = numbered
  source, why = clean_side(msgid, keep)
  if source is None:
    return None, why
  target, why = clean_side(msgstr, keep)
  if target is None:
    return None, why
  if source == target:
    return None, "copy"
  n_src, n_tgt = len(source.split()), len(target.split())
  if max(n_src, n_tgt) > max_words:
    return None, "length"
  if max(n_src, n_tgt) > 5 and max(n_src, n_tgt) > 3 * min(n_src, n_tgt):
    return None, "ratio"
  return (source, target), None


def split_of(source: str) -> str:
  bucket = int(hashlib.sha1(source.encode("utf-8")).hexdigest(), 16) % 1000
  for split, threshold in SPLIT_THRESHOLDS:
    if bucket < threshold:
      return split
  return "train"


def collect(language: str, roots: Sequence[str], max_words: int = MAX_WORDS,
            placeholders: str = "drop"):
  """-> ({split: [(source, target)] sorted}, report dict)."""
  check_one_of("placeholders", placeholders, PLACEHOLDER_MODES)
  paths = find_catalogs(language, roots)
  dropped = collections.Counter()
  catalogs = []
  candidates: dict[str, collections.Counter] = {}
  first_seen: dict[tuple[str, str], int] = {}
  order = 0
  for path in paths:
    try:
      charset, entries, failed = read_mo(path)
    except (OSError, ValueError) as e:
      catalogs.append({"path": path, "error": str(e)})
      continue
    dropped["undecodable"] += failed
    kept = 0
    for msgid, msgstr in entries:
      pair, why = clean_pair(msgid, msgstr, max_words, placeholders)
      if pair is None:
        dropped[why] += 1
        continue
      kept += 1
      candidates.setdefault(pair[0], collections.Counter())[pair[1]] += 1
      if pair not in first_seen:
        first_seen[pair] = order
        order += 1
    catalogs.append({"path": path, "charset": charset, "entries": len(entries),
                     "clean": kept})
  splits = {split: [] for split in SPLITS}
  total_clean = 0
  for source, translations in candidates.items():
    total_clean += sum(translations.values())
    target = min(translations, key=lambda t: (-translations[t],
                                              first_seen[(source, t)]))
    splits[split_of(source)].append((source, target))
  dropped["duplicate"] = total_clean - len(candidates)
  for pairs in splits.values():
    pairs.sort()
  report = {"language": language, "roots": list(roots),
            "catalogs": catalogs, "num_catalogs": len(paths),
            "catalogs_fingerprint": catalogs_fingerprint(
                [c["path"] for c in catalogs if "error" not in c]),
            "dropped": dict(sorted(dropped.items())),
            "splits": {s: len(p) for s, p in splits.items()},
            "max_words": max_words, "placeholders": placeholders}
  return splits, report


def fingerprint(pairs: Sequence[tuple[str, str]]) -> str:
  return store.sha256_lines(f"{source}\t{target}" for source, target in pairs)


def building_code() -> str:
  """A hash of the code from '.mo files' to here (reading, finding,
  cleaning, splitting) and the limits: a corpus built by other code is
  rebuilt on its next read, so a changed rule never leaves a stale corpus."""
  source = open(__file__, encoding="utf-8").read()
  body = source[source.index("# .mo files."):source.index("# The TFDS builder.")]
  limits = repr((MAX_WORDS, SPLIT_THRESHOLDS, LANGUAGES))
  return hashlib.sha256((body + limits).encode("utf-8")).hexdigest()[:16]


# ----------------------------------------------------------------------------
# The TFDS builder.

class GettextParallelConfig(tfds.core.BuilderConfig):
  def __init__(self, *, language: str, placeholders: str = "drop", **kwargs):
    suffix = "_keep_placeholders" if placeholders == "keep" else ""
    super().__init__(name=f"en_{language}{suffix}", **kwargs)
    self.language = language
    self.placeholders = placeholders


class GettextParallel(tfds.core.GeneratorBasedBuilder):
  """English -> fr/de/es pairs from the gettext catalogs on this machine."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Catalogs of the machine; cleaning as documented."}
  BUILDER_CONFIGS = [
      GettextParallelConfig(language=lang, placeholders=mode, description=(
          f"English -> {lang}" + (", placeholders as numbered tokens"
                                  if mode == "keep" else "")))
      for mode in PLACEHOLDER_MODES for lang in LANGUAGES]

  def __init__(self, *, roots: Sequence[str] | None = None,
               max_words: int = MAX_WORDS, **kwargs):
    self._roots = list(roots) if roots else None
    self._max_words = max_words
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(__doc__ or "").strip(),
        features=tfds.features.FeaturesDict({
            "source": tfds.features.Text(),
            "target": tfds.features.Text(),
            "index": tfds.features.Scalar(dtype=np.int32)}),
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict())

  def _split_generators(self, dl_manager):
    del dl_manager  # offline
    roots = self._roots or default_roots()
    splits, report = collect(self.builder_config.language, roots, self._max_words,
                             self.builder_config.placeholders)
    if not splits["train"] or not splits["validation"] or not splits["test"]:
      raise store.NoSourceData(
          f"gettext_parallel/en_{self.builder_config.language}: found "
          f"{report['num_catalogs']} catalogs under {roots}, giving split sizes "
          f"{report['splits']}; every split needs at least one pair. Set "
          f"${ENV_ROOTS} to directories holding <lang>/LC_MESSAGES/*.mo")
    report["fingerprints"] = {s: fingerprint(p) for s, p in splits.items()}
    report["building_code"] = building_code()
    for key, value in report.items():
      self.info.metadata[key] = value
    return {split: self._generate_examples(pairs) for split, pairs in splits.items()}

  def _generate_examples(self, pairs):
    for index, (source, target) in enumerate(pairs):
      yield index, {"source": source, "target": target, "index": index}


# ----------------------------------------------------------------------------
# Reading.

def _read_verified(builder, split: str) -> list[tuple[str, str]]:
  records = store.read_records(builder.as_data_source(split=split))
  store.check_in_order(records)
  pairs = [(store.text(r["source"]), store.text(r["target"])) for r in records]
  if fingerprint(pairs) != builder.info.metadata["fingerprints"][split]:
    raise store.CorpusError("the pairs read back differ from those written")
  return pairs


def _current_builder(name: str, data_dir: str, roots=None) -> GettextParallel:
  """builder_for, after deleting a corpus that other code built."""
  builder = builder_for(name, data_dir, roots)
  if (builder.is_prepared()
      and builder.info.metadata.get("building_code") != building_code()):
    logging.warning("Corpus in %s was built by other cleaning code; rebuilding "
                    "it.", builder.data_dir)
    shutil.rmtree(builder.data_dir, ignore_errors=True)
    builder = builder_for(name, data_dir, roots)
  return builder


def builder_for(name: str, data_dir: str, roots=None) -> GettextParallel:
  config = store.config_of(name, GettextParallel)
  return GettextParallel(data_dir=data_dir, config=config, roots=roots,
                         file_format="array_record")


def load_pairs(name: str, split: str, *, data_dir: str | None = None,
               roots: Sequence[str] | None = None, source_feature: str = "en",
               target_feature: str = "fr") -> list[tuple[str, str]]:
  """(source, target) texts of a split.

  name: 'gettext_parallel[/en_fr|en_de|en_es|en_fr_keep_placeholders|...]' (built on first use from
  the catalogs under `roots`, default `default_roots()`), or a TFDS
  translation dataset such as 'wmt14_translate/fr-en' whose records hold
  the two languages under source_feature / target_feature (downloaded and
  prepared as ArrayRecord where the machine can).
  """
  import corpora  # pylint: disable=g-import-not-at-top
  data_dir = corpora.resolve_data_dir(data_dir)
  if name.split("/")[0] != "gettext_parallel":
    import tensorflow_datasets.translate  # noqa: F401  pylint: disable=g-import-not-at-top
    source = tfds.data_source(name, split=split, data_dir=data_dir)
    records = store.read_records(source)
    try:
      return [(store.text(r[source_feature]), store.text(r[target_feature]))
              for r in records]
    except KeyError:
      raise ValueError(f"source_feature/target_feature: {name} records have "
                       f"keys {sorted(records[0]) if records else []}, not "
                       f"{source_feature!r} and {target_feature!r}") from None
  check_one_of("split", split, SPLITS)
  config = store.config_of(name, GettextParallel)
  path = os.path.join(data_dir, GettextParallel.name, config,
                      str(GettextParallel.VERSION))

  def read(builder):
    pairs = _read_verified(builder, split)
    _warn_if_catalogs_changed(builder, roots)
    return pairs
  return store.read_built(lambda: _current_builder(name, data_dir, roots), read,
                          name=name, path=path)


_CHECKED: set[str] = set()


def _warn_if_catalogs_changed(builder, roots) -> None:
  """Once per process and corpus directory (walking the roots takes ~1 s)."""
  if builder.data_dir in _CHECKED:
    return
  _CHECKED.add(builder.data_dir)
  meta = builder.info.metadata
  now = find_catalogs(builder.builder_config.language, roots or meta["roots"])
  if catalogs_fingerprint(now) != meta["catalogs_fingerprint"]:
    logging.warning(
        "gettext_parallel: the catalogs on this machine (%d) differ from the %d "
        "the corpus in %s was built from; delete that directory to rebuild.",
        len(now), meta["num_catalogs"], builder.data_dir)


def describe(name: str = "gettext_parallel/en_fr", data_dir: str | None = None,
             roots=None) -> dict:
  """The build report: catalogs, per-catalog counts, drops, split sizes."""
  import corpora  # pylint: disable=g-import-not-at-top
  builder = _current_builder(name, corpora.resolve_data_dir(data_dir), roots)
  if not builder.is_prepared():
    store.prepare(builder)
  return {k: v for k, v in builder.info.metadata.items() if k != "fingerprints"}
