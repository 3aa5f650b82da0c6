"""A TFDS builder base for offline text corpora of one sentence per line.

Each example is one line of a split, in the corpus's own order:
  {'text': the line's tokens separated by single spaces, 'index': its line number}
Order matters for language modelling, so shuffling is disabled and the
`index` field lets readers check that the records come back in order.

Two builder configs:
  word  tokens are the corpus's words:           "the cat sat"
  char  tokens are characters, '_' between words: "t h e _ c a t _ s a t"
        (the format of Mikolov's ptb.char.*.txt files)
Either way a reader splits on whitespace and appends '<eos>' per line.

Files are written as ArrayRecord and read with `tfds.data_source`: no
TensorFlow. `info.metadata[split]` holds the sha256 and line count of the
split's text as written, so a reader can prove it read back exactly that.

Subclasses implement `split_texts()` -> {split: raw text, one sentence per
line}; see `corpora.ptb` for Penn Treebank.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

import numpy as np
import tensorflow_datasets as tfds

from models.checks import check_one_of

WORD_SEPARATOR = "_"   # between words in the char config
UNITS = ("word", "char")


class LineCorpusConfig(tfds.core.BuilderConfig):
  """A config naming the token unit, 'word' or 'char'."""

  def __init__(self, *, unit: str, **kwargs):
    check_one_of("unit", unit, UNITS)
    super().__init__(name=unit, **kwargs)
    self.unit = unit


def format_line(line: str, unit: str) -> str:
  """One raw line -> the stored text for `unit` (tokens separated by spaces).

  >>> format_line(" the cat ", "char")
  't h e _ c a t'
  """
  words = line.split()
  if unit == "word":
    return " ".join(words)
  joined = WORD_SEPARATOR.join(words)
  if WORD_SEPARATOR in "".join(words):
    raise ValueError(f"line: the char config uses {WORD_SEPARATOR!r} between "
                     f"words, but the text already contains it: {line[:80]!r}")
  return " ".join(joined)


def fingerprint(lines: Iterable[str]) -> str:
  """sha256 of the lines joined by newlines (what a split's records hold)."""
  digest = hashlib.sha256()
  for i, line in enumerate(lines):
    digest.update((("\n" if i else "") + line).encode("utf-8"))
  return digest.hexdigest()


class LineCorpus(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base builder: subclasses define `split_texts` (and a docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "One example per line; word and char configs."}
  BUILDER_CONFIGS = [
      LineCorpusConfig(unit="word", description="word tokens"),
      LineCorpusConfig(unit="char", description="character tokens, '_' between words"),
  ]
  SPLITS = ("train", "validation", "test")  # what split_texts() returns
  # Concrete subclasses, by TFDS name; filled by __init_subclass__.
  registry: dict[str, type["LineCorpus"]] = {}

  def __init_subclass__(cls, skip_registration: bool = False, **kwargs):
    super().__init_subclass__(skip_registration=skip_registration, **kwargs)
    if not skip_registration:
      LineCorpus.registry[cls.name] = cls

  def split_texts(self) -> dict[str, str]:
    """-> {TFDS split name: raw text, one sentence per line}."""
    raise NotImplementedError

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(self.__doc__ or self.name).strip(),
        features=tfds.features.FeaturesDict({
            "text": tfds.features.Text(),
            "index": tfds.features.Scalar(dtype=np.int32),
        }),
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # everything is offline
    generators = {}
    texts = self.split_texts()
    if sorted(texts) != sorted(self.SPLITS):
      raise ValueError(f"split_texts: expected splits {list(self.SPLITS)}, got "
                       f"{sorted(texts)}")
    for split, text in texts.items():
      lines = [format_line(line, self.builder_config.unit)
               for line in text.splitlines()]
      self.info.metadata[split] = {"sha256": fingerprint(lines),
                                   "num_lines": len(lines)}
      generators[split] = self._generate_examples(lines)
    return generators

  def _generate_examples(self, lines):
    for index, line in enumerate(lines):
      yield index, {"text": line, "index": index}
