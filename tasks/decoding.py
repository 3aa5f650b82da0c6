"""Text in, text out: batched greedy or beam decoding of raw strings.

Handles what users type: an empty (or blank) line gives an empty output and
a note; characters the source vocabulary cannot represent are dropped
(character vocabularies) or read as <unk> (subword vocabularies), with a
note naming them; a source longer than max_source_tokens is cut to that
length, with a note. Nothing here raises on odd input.

Sources are sorted by length and padded to a few fixed lengths (powers of
two up to max_source_tokens) and to full batches, so the jitted decoders
compile once per length bucket.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import numpy as np

from models import seq2seq as s2s


@dataclasses.dataclass
class Translation:
  """One output: text, its ids (EOS excluded), log p, score, and a note
  when the input was changed or could not be used ('' otherwise)."""
  text: str
  ids: list[int]
  log_prob: float
  score: float
  note: str = ""


def _source_ids(vocab, text: str, max_tokens: int) -> tuple[list[int], str]:
  notes = []
  unknown = vocab.unknown(text)
  if unknown:
    if hasattr(vocab, "alphabet"):       # character vocabulary: drop them
      text = "".join(ch for ch in text if ch not in unknown)
      notes.append(f"dropped characters not in the vocabulary: {unknown}")
    else:
      notes.append(f"characters read as <unk>: {unknown}")
  ids = vocab.encode(text.strip())
  if len(ids) > max_tokens:
    notes.append(f"input cut from {len(ids)} to {max_tokens} tokens")
    ids = ids[:max_tokens]
  return ids, "; ".join(notes)


def _padded_length(length: int, max_tokens: int) -> int:
  size = 8
  while size < length:
    size *= 2
  return min(size, max_tokens)


def translate_texts(model: s2s.Seq2seq, params, source_vocab, target_vocab,
                    texts: Sequence[str], *, beam_size: int = 1,
                    max_source_tokens: int = 96, max_decode_len: int = 96,
                    alpha: float = 1.0, batch_size: int = 64) -> list[Translation]:
  """Decodes each text; results in the input order (see module docstring)."""
  if beam_size < 1:
    raise ValueError(f"beam_size: expected a positive integer, got {beam_size}")
  results: list[Translation | None] = [None] * len(texts)
  pending = []
  for i, text in enumerate(texts):
    if not text.strip():
      results[i] = Translation("", [], 0.0, 0.0, "empty input")
      continue
    ids, note = _source_ids(source_vocab, text, max_source_tokens)
    if not ids:
      results[i] = Translation("", [], 0.0, 0.0,
                               (note + "; " if note else "") + "nothing left to translate")
      continue
    pending.append((i, ids, note))
  pending.sort(key=lambda item: len(item[1]))
  for start in range(0, len(pending), batch_size):
    chunk = pending[start:start + batch_size]
    width = _padded_length(max(len(ids) for _, ids, _ in chunk), max_source_tokens)
    inputs = np.zeros((batch_size, width), np.int32)
    lengths = np.ones((batch_size,), np.int32)
    for row, (_, ids, _) in enumerate(chunk):
      inputs[row, :len(ids)] = ids
      lengths[row] = len(ids)
    if beam_size == 1:
      hyps = s2s.greedy_decode(model, params, inputs, lengths,
                               max_len=max_decode_len)
    else:
      beams = s2s.beam_search(model, params, inputs, lengths,
                              beam_size=beam_size, max_len=max_decode_len,
                              alpha=alpha)
      hyps = jax.tree_util.tree_map(lambda x: x[:, 0], beams)
    hyps = jax.device_get(hyps)
    for row, (i, _, note) in enumerate(chunk):
      out = [int(t) for t in hyps.tokens[row][:int(hyps.lengths[row])]
             if int(t) != s2s.EOS]
      if not hyps.finished[row]:
        note = (note + "; " if note else "") + (
            f"output cut at max_decode_len={max_decode_len}")
      results[i] = Translation(target_vocab.decode(out), out,
                               float(hyps.log_probs[row]), float(hyps.scores[row]),
                               note)
  return results  # type: ignore[return-value]
