"""Corpus-level caption metrics against several references per image.

hypotheses[i] is the caption generated for image i, references[i] the list
of its human captions (any number >= 1, it may differ between images).
Captions are lower-case, space-separated tokens and are scored as given:
nothing is lower-cased, detokenised or re-tokenised.

- `bleu`: corpus BLEU-1..4 on the 0-100 scale, by sacrebleu against all
  references of each image.
- `cider_d`: CIDEr-D (Vedantam et al. 2015) as the COCO caption evaluation
  code computes it (pycocoevalcap's `Cider`), written here from the paper.
- `exact_match`: the fraction of hypotheses equal to one of their references.
- `caption_scores`: all of the above in one dict.

Every function raises ValueError for an empty corpus, for different numbers
of hypotheses and reference sets, for an image without references and for a
blank reference.

BLEU compared with pycocoevalcap 1.2 (`Bleu(4)`, values times 100), read from
both sources and checked on the corpora in tests/test_caption_metrics.py:

- Both take the reference length of an image as the reference length closest
  to the hypothesis length, a tie going to the shorter reference, and both
  clip n-gram matches by the largest count in any one reference, so the
  brevity penalty and the precisions are the same rule.
- pycocoevalcap adds epsilons instead of smoothing: each precision is
  (matches + 1e-15) / (n-grams + 1e-9), the length ratio likewise. Where
  every order has a match they agree to about 1e-8 (6-image test corpus:
  largest difference 4e-9).
- An order with n-grams but no match: sacrebleu without smoothing gives 0;
  pycocoevalcap gives 1e-15 / n-grams for that precision, so a small positive
  BLEU (0.0067 for BLEU-4 on a test corpus). sacrebleu's default 'exp'
  smoothing would give 31.7 there, which is why it is off here.
- An order with no n-grams at all (every hypothesis shorter than n):
  sacrebleu gives 0; pycocoevalcap's epsilons make that precision 1e-6, so
  BLEU-3 of a corpus of two-word hypotheses is 0.31 there (0 here).
"""

from __future__ import annotations

import collections
import math
from typing import NamedTuple, Sequence

import numpy as np

MAX_ORDER = 4   # n-gram orders 1..4, for BLEU-4 and CIDEr-D alike

NGram = tuple[str, ...]


# ----------------------------------------------------------------------------
# Inputs.

def _validate(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> None:
  """Raises ValueError naming the first problem with a corpus."""
  if isinstance(hypotheses, str) or isinstance(references, str):
    raise ValueError("hypotheses and references must be sequences of captions, "
                     "not single strings")
  if len(hypotheses) != len(references):
    raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} "
                     "reference sets: give one list of references per hypothesis")
  if not hypotheses:
    raise ValueError("empty corpus: no hypotheses to score")
  for i, refs in enumerate(references):
    _validate_references(i, refs)


def _validate_references(image: int, refs: Sequence[str]) -> None:
  """A bare string is refused because it would be read as one reference per
  character; a blank reference because sacrebleu and CIDEr-D would count it as
  a caption of length 0."""
  if isinstance(refs, str):
    raise ValueError(f"references[{image}] is a string: give a list of "
                     "reference captions for each image")
  if not refs:
    raise ValueError(f"image {image} has no references")
  for j, ref in enumerate(refs):
    if not isinstance(ref, str) or not ref.split():
      raise ValueError(f"reference {j} of image {image} is blank ({ref!r})")


# ----------------------------------------------------------------------------
# BLEU.

def _bleu_metric(order: int):
  """sacrebleu BLEU up to `order` on tokens as given; no smoothing, since
  the COCO evaluation has none (only epsilons, see the module docstring);
  force=True because tokenised captions ending in ' .' are intended here."""
  try:
    from sacrebleu.metrics import BLEU  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("BLEU needs sacrebleu==2.6.0 (pip install -r "
                      "requirements.txt)") from e
  return BLEU(tokenize="none", smooth_method="none", max_ngram_order=order,
              force=True)


def _reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
  """Per-image reference lists -> sacrebleu's reference streams: stream j
  holds the j-th reference of every image, None where an image has fewer.

  None is the only correct padding: sacrebleu drops None from an image's
  references but keeps '' as a reference of length 0, which would then be
  the closest reference length of short hypotheses and lift their brevity
  penalty.
  """
  width = max(len(refs) for refs in references)
  return [[refs[j] if j < len(refs) else None for refs in references]
          for j in range(width)]


def bleu(hypotheses: Sequence[str],
         references: Sequence[Sequence[str]]) -> dict[str, float]:
  """Corpus BLEU-1..4 ('bleu1'..'bleu4', 0-100) against all references.

  BLEU-n is cumulative, as in the COCO caption evaluation: the geometric
  mean of the clipped 1..n-gram precisions times the brevity penalty, with
  the corpus reference length summed from each image's closest reference
  length. Unsmoothed: an order without a match makes BLEU-n 0.
  """
  _validate(hypotheses, references)
  hypotheses = list(hypotheses)
  streams = _reference_streams(references)
  return {f"bleu{n}": _bleu_metric(n).corpus_score(hypotheses, streams).score
          for n in range(1, MAX_ORDER + 1)}


# ----------------------------------------------------------------------------
# CIDEr-D.

def _ngram_counts(caption: str) -> collections.Counter[NGram]:
  """Counts of all 1..MAX_ORDER-grams of a caption's tokens."""
  tokens = caption.split()
  return collections.Counter(
      tuple(tokens[i:i + n]) for n in range(1, MAX_ORDER + 1)
      for i in range(len(tokens) - n + 1))


def _document_frequency(reference_counts: Sequence[Sequence[collections.Counter]]
                        ) -> collections.Counter[NGram]:
  """n-gram -> number of images whose references contain it (an n-gram
  counts once per image, however many of its references have it)."""
  frequency = collections.Counter()
  for counts in reference_counts:
    frequency.update(set().union(*counts))
  return frequency


class _TfIdf(NamedTuple):
  """One caption's TF-IDF weights, their norm per n-gram order and its length
  in tokens."""
  weights: dict[NGram, float]
  norms: np.ndarray   # [MAX_ORDER]
  length: int


def _tfidf(counts: collections.Counter[NGram], frequency: collections.Counter[NGram],
           log_images: float) -> _TfIdf:
  """idf = log(images) - log(max(1, df)): an n-gram absent from every
  reference set gets the largest idf."""
  weights = {g: c * (log_images - math.log(max(1, frequency[g])))
             for g, c in counts.items()}
  squares = np.zeros(MAX_ORDER)
  for g, w in weights.items():
    squares[len(g) - 1] += w * w
  length = sum(c for g, c in counts.items() if len(g) == 1)
  return _TfIdf(weights, np.sqrt(squares), length)


def _similarity(hyp: _TfIdf, ref: _TfIdf, sigma: float) -> np.ndarray:
  """[MAX_ORDER] clipped cosine similarities times the Gaussian length
  penalty; 0 for an order where either vector is zero.

  The COCO code takes a caption's length as its bigram count; that is the
  token count minus one for both captions, so the difference is the same,
  except when one caption is empty, and then the similarity is 0 anyway.
  """
  dot = np.zeros(MAX_ORDER)
  for g, w in hyp.weights.items():
    r = ref.weights.get(g, 0.0)
    dot[len(g) - 1] += min(w, r) * r
  norms = hyp.norms * ref.norms
  cosine = np.divide(dot, norms, out=np.zeros(MAX_ORDER), where=norms > 0)
  return cosine * math.exp(-(hyp.length - ref.length) ** 2 / (2 * sigma ** 2))


def _image_score(hyp: _TfIdf, refs: Sequence[_TfIdf], sigma: float) -> float:
  """10 x the similarity averaged over references and n-gram orders."""
  return 10.0 * float(np.mean([_similarity(hyp, ref, sigma) for ref in refs]))


def cider_d(hypotheses: Sequence[str], references: Sequence[Sequence[str]],
            sigma: float = 6.0) -> tuple[float, np.ndarray]:
  """CIDEr-D -> (corpus mean, [images] per-image scores).

  Document frequencies come from the reference sets of this corpus, as in
  the COCO evaluation, so a score depends on the whole corpus; a corpus of
  one image scores 0 (every idf is log 1 - log 1).
  """
  _validate(hypotheses, references)
  if not sigma > 0:
    raise ValueError(f"sigma must be positive, got {sigma}")
  hyp_counts = [_ngram_counts(h) for h in hypotheses]
  ref_counts = [[_ngram_counts(r) for r in refs] for refs in references]
  frequency = _document_frequency(ref_counts)
  log_images = math.log(len(hypotheses))
  scores = np.array([
      _image_score(_tfidf(h, frequency, log_images),
                   [_tfidf(r, frequency, log_images) for r in refs], sigma)
      for h, refs in zip(hyp_counts, ref_counts)])
  return float(scores.mean()), scores


# ----------------------------------------------------------------------------
# Exact match and all together.

def exact_match(hypotheses: Sequence[str],
                references: Sequence[Sequence[str]]) -> float:
  """Fraction (0-1) of hypotheses whose tokens equal those of one of their
  references; tokens, so spacing differences do not count."""
  _validate(hypotheses, references)
  hits = sum(any(h.split() == r.split() for r in refs)
             for h, refs in zip(hypotheses, references))
  return hits / len(hypotheses)


def caption_scores(hypotheses: Sequence[str],
                   references: Sequence[Sequence[str]]) -> dict[str, float]:
  """{'bleu1'..'bleu4', 'cider_d', 'exact_match'} for one corpus."""
  return {**bleu(hypotheses, references),
          "cider_d": cider_d(hypotheses, references)[0],
          "exact_match": exact_match(hypotheses, references)}
