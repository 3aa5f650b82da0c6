"""Neural machine translation on a parallel corpus (default: the offline
gettext en->fr corpus, corpora/gettext_parallel.py).

Text -> ids with a joint sentencepiece vocabulary trained on the training
pairs (corpora/subwords.py); targets end with EOS. Training batches are
bucketed by length (tasks/seq2seq.BucketedBatches); training pairs longer
than the largest bucket (max_tokens) are dropped, evaluation pairs are
truncated to it (teacher-forced metrics only; BLEU decodes every source,
truncated to max_tokens, see `bleu_report`).

Training reports teacher-forced perplexity and accuracies on valid and
test. BLEU and chrF (sacrebleu, on detokenised text against the cleaned
references) come from `bleu_report`, run after training by experiments/nmt.py
or experiments/translate.py --evaluate; it also gives BLEU by source length
in words (Bahdanau et al. 2015, figure 2).
"""

from __future__ import annotations

import errno
import functools
import os
import time
from typing import Sequence

from corpora import gettext_parallel
from corpora import subwords
from tasks import decoding
from tasks import seq2seq

BOUNDARIES = (10, 20, 40, 64)
# Source length buckets in words for BLEU by length: (low, high) inclusive.
LENGTH_BUCKETS = ((1, 2), (3, 4), (5, 6), (7, 9), (10, 14), (15, 50))


def boundaries(config) -> tuple[int, ...]:
  kept = tuple(b for b in BOUNDARIES if b < config.max_tokens) + (config.max_tokens,)
  return kept


@functools.lru_cache(maxsize=4)
def _pairs(dataset: str, split: str, data_dir: str, source_feature: str,
           target_feature: str) -> tuple[tuple[str, str], ...]:
  return tuple(gettext_parallel.load_pairs(
      dataset, split, data_dir=data_dir or None, source_feature=source_feature,
      target_feature=target_feature))


def load_pairs(config, split_key: str) -> list[tuple[str, str]]:
  """The texts of config.<split_key> ('train_split', ...), capped by
  max_train_pairs / max_eval_pairs when set (> 0)."""
  pairs = list(_pairs(config.dataset, config[split_key], config.data_dir,
                      config.source_feature, config.target_feature))
  cap = config.max_train_pairs if split_key == "train_split" else config.max_eval_pairs
  return pairs[:cap] if cap else pairs


SUBWORDS_FILE = "subwords.model"   # a run's vocabulary, kept in its workdir


class DamagedVocabularyError(ValueError):
  """A workdir's subword vocabulary file is not a sentencepiece model."""


def run_vocabulary(workdir: str) -> subwords.SubwordVocabulary:
  """WORKDIR/subwords.model, written by training: the only vocabulary the
  run's checkpoints can be decoded with.

  Raises FileNotFoundError naming the path when it is missing, and
  DamagedVocabularyError naming it when it is not a sentencepiece model.
  """
  path = os.path.join(workdir, SUBWORDS_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(
        errno.ENOENT, "no subword vocabulary: training writes the run's "
        "vocabulary there and its checkpoints decode with that one only; "
        "copy it back from the training run", path)
  with open(path, "rb") as f:
    data = f.read()
  try:
    vocab = subwords.SubwordVocabulary(data) if data else None
  except RuntimeError:
    vocab = None
  if vocab is None or vocab.size <= subwords.UNK:
    raise DamagedVocabularyError(
        f"{path}: not a sentencepiece model ({len(data)} bytes); the file is "
        f"damaged, copy it back from the training run")
  return vocab


def vocabulary(config, workdir: str | None = None) -> subwords.SubwordVocabulary:
  """The run's vocabulary: WORKDIR/subwords.model when a workdir is given
  (`run_vocabulary`; a missing or damaged file is an error), else the one
  trained on the corpus's training pairs (trained on first use and cached by
  their hash)."""
  if workdir is not None:
    return run_vocabulary(workdir)
  import corpora  # pylint: disable=g-import-not-at-top
  return subwords.load_or_train(load_pairs(config, "train_split"),
                                config.vocab_size,
                                corpora.resolve_data_dir(config.data_dir or None),
                                config.dataset)


def encode_pairs(vocab, pairs, max_tokens: int, *, truncate: bool):
  """Texts -> id pairs; target lengths count EOS. Returns (ids, dropped)."""
  examples, dropped = [], 0
  for source, target in pairs:
    src, tgt = vocab.encode(source), vocab.encode(target)
    if not src or not tgt:
      dropped += 1
      continue
    if len(src) > max_tokens or len(tgt) + 1 > max_tokens:
      if not truncate:
        dropped += 1
        continue
      src, tgt = src[:max_tokens], tgt[:max_tokens - 1]
    examples.append((src, tgt))
  return examples, dropped


def build(config) -> seq2seq.Seq2seqTask:
  vocab = vocabulary(config)
  limits = boundaries(config)
  train_ids, _ = encode_pairs(vocab, load_pairs(config, "train_split"),
                              config.max_tokens, truncate=False)
  evals = {}
  for name, key in (("valid", "valid_split"), ("test", "test_split")):
    ids, _ = encode_pairs(vocab, load_pairs(config, key), config.max_tokens,
                          truncate=True)
    evals[name] = seq2seq.eval_batches(ids, config.eval_batch_size, limits)
  return seq2seq.Seq2seqTask(
      model=seq2seq.build_model(config, vocab.size, vocab.size),
      loss=seq2seq.loss, summarize=seq2seq.summarize,
      solved=seq2seq.sequence_solved(config.solved_accuracy),
      train_batches=seq2seq.BucketedBatches(train_ids, config.batch_size,
                                            limits, config.seed),
      eval_splits=evals, source_vocab=vocab, target_vocab=vocab,
      run_files={SUBWORDS_FILE: vocab.model_proto})


# ----------------------------------------------------------------------------
# BLEU.

def _sacrebleu():
  try:
    import sacrebleu  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("BLEU needs sacrebleu==2.6.0 (pip install -r "
                      "requirements.txt)") from e
  return sacrebleu


def _placeholders_as_words(texts: Sequence[str]) -> list[str]:
  """'<2>' -> '⟨2⟩': 13a tokenisation splits '<2>' into three tokens, so
  every kept placeholder (the *_keep_placeholders corpora) would add easy
  n-gram matches; as one token it counts like the word it stands for."""
  return [gettext_parallel.PLACEHOLDER_TOKEN.sub(r"⟨\1⟩", text) for text in texts]


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
  """sacrebleu BLEU (13a tokenisation; a placeholder token <k> counts as
  one token) and chrF on detokenised text."""
  metrics = _sacrebleu().metrics
  bleu, chrf = metrics.BLEU(), metrics.CHRF()
  refs = [_placeholders_as_words(references)]
  return {"bleu": round(bleu.corpus_score(_placeholders_as_words(hypotheses),
                                          refs).score, 2),
          "chrf": round(chrf.corpus_score(list(hypotheses),
                                          [list(references)]).score, 2),
          "bleu_signature": str(bleu.get_signature()),
          "sentences": len(hypotheses)}


def scores_by_length(sources, hypotheses, references, buckets=LENGTH_BUCKETS):
  """BLEU per bucket of source length in words -> list of dicts."""
  rows = []
  for low, high in buckets:
    picked = [i for i, s in enumerate(sources) if low <= len(s.split()) <= high]
    if not picked:
      continue
    scores = corpus_scores([hypotheses[i] for i in picked],
                           [references[i] for i in picked])
    rows.append({"words": f"{low}-{high}", "low": low, "high": high,
                 "sentences": len(picked), "bleu": scores["bleu"],
                 "chrf": scores["chrf"]})
  return rows


def bleu_report(config, model, params, vocab, *, split_key: str = "test_split",
                beam_sizes: Sequence[int] = (1, 5), batch_size: int = 64,
                max_sentences: int = 0) -> dict:
  """Decodes a split greedily (beam 1) and with each larger beam; BLEU,
  chrF and BLEU by source length for each. Hypotheses are included.
  vocab: the model's (joint) subword vocabulary."""
  pairs = load_pairs(config, split_key)
  if max_sentences:
    pairs = pairs[:max_sentences]
  sources = [s for s, _ in pairs]
  references = [t for _, t in pairs]
  report = {"split": config[split_key], "sentences": len(pairs), "decodes": {}}
  for beam in beam_sizes:
    start = time.time()
    results = decoding.translate_texts(
        model, params, vocab, vocab, sources, beam_size=beam,
        max_source_tokens=config.max_tokens,
        max_decode_len=config.max_decode_len, alpha=config.length_alpha,
        batch_size=batch_size)
    hypotheses = [r.text for r in results]
    name = "greedy" if beam == 1 else f"beam{beam}"
    report["decodes"][name] = {
        **corpus_scores(hypotheses, references),
        "by_length": scores_by_length(sources, hypotheses, references),
        "beam_size": beam, "decode_seconds": round(time.time() - start, 1),
        "hypotheses": hypotheses}
  return report


def vocabularies(config, workdir: str | None = None):
  """(source, target) vocabularies (one joint subword vocabulary), the
  workdir's own when it has one."""
  vocab = vocabulary(config, workdir)
  return vocab, vocab
