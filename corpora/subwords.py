"""A joint subword vocabulary (sentencepiece unigram), trained offline.

Ids 0, 1, 2 are PAD, BOS (<s>), EOS (</s>) as everywhere in this project;
3 is <unk>. The model is trained once on the training pairs (both sides)
and saved as <data_dir>/subwords/<key>.model; the same arguments find it
again. Training reads every sentence (no sampling) with one thread, so the
vocabulary is a function of the text and the settings.
"""

from __future__ import annotations

import hashlib
import io
import os
from typing import Iterable, Sequence

UNK = 3


def _spm():
  try:
    import sentencepiece  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("subword vocabularies need sentencepiece==0.2.3 "
                      "(pip install -r requirements.txt)") from e
  return sentencepiece


class SubwordVocabulary:
  """encode(text) -> ids (no EOS), decode(ids) -> detokenised text."""

  def __init__(self, model_proto: bytes):
    self._sp = _spm().SentencePieceProcessor(model_proto=model_proto)
    self.model_proto = model_proto

  @classmethod
  def load(cls, path: str) -> "SubwordVocabulary":
    with open(path, "rb") as f:
      return cls(f.read())

  @property
  def size(self) -> int:
    return self._sp.get_piece_size()

  def encode(self, text: str) -> list[int]:
    return list(self._sp.encode(text))

  def pieces(self, text: str) -> list[str]:
    return list(self._sp.encode(text, out_type=str))

  def decode(self, ids: Sequence[int]) -> str:
    kept = []
    for i in ids:
      i = int(i)
      if i == 2:        # EOS
        break
      if i > 2:
        kept.append(i)
    return self._sp.decode(kept)

  def unknown(self, text: str) -> list[str]:
    """Characters of text that map to <unk>."""
    return sorted({ch for ch in set(text) if not ch.isspace()
                   and UNK in self._sp.encode(ch)})


def train(texts: Iterable[str], vocab_size: int, path: str) -> SubwordVocabulary:
  """Trains a unigram model on texts and writes it to path (.model)."""
  spm = _spm()
  texts = [t for t in texts if t.strip()]
  if not texts:
    raise ValueError("texts: a subword vocabulary needs some training text")
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(texts), model_writer=model,
      vocab_size=vocab_size, model_type="unigram", character_coverage=1.0,
      pad_id=0, bos_id=1, eos_id=2, unk_id=UNK, hard_vocab_limit=False,
      input_sentence_size=0, shuffle_input_sentence=False, num_threads=1,
      minloglevel=2)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    f.write(model.getvalue())
  os.replace(tmp, path)
  return SubwordVocabulary(model.getvalue())


def load_or_train(pairs: Sequence[tuple[str, str]], vocab_size: int,
                  data_dir: str, name: str) -> SubwordVocabulary:
  """The vocabulary for these training pairs, trained on first use.

  The file name holds the dataset name, the size and a hash of the text,
  so a changed corpus gets a new vocabulary instead of a stale one.
  """
  digest = hashlib.sha256()
  for source, target in pairs:
    digest.update(f"{source}\t{target}\n".encode("utf-8"))
  key = f"{name.replace('/', '_')}_{vocab_size}_{digest.hexdigest()[:12]}"
  path = os.path.join(data_dir, "subwords", key + ".model")
  if os.path.exists(path):
    return SubwordVocabulary.load(path)
  return train((text for pair in pairs for text in pair), vocab_size, path)
