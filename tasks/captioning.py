"""Image captioning (1 -> N): Show and Tell, and Show, Attend and Tell.

Data: `corpora.captions.read_split(config.dataset, split)` (generated
'shapes' scenes, 'digits' numbers in words, or a TFDS name such as
'coco_captions'): images with one or more reference captions. Training pairs
every image with each of its references (an epoch sees every pair once);
the validation split scores every (image, reference) pair teacher-forced
(`tasks.seq2seq.loss`: nll, perplexity, token and sequence accuracy), which
picks the best checkpoint. Every evaluation split's decoded captions (greedy
and beam) are scored against all references after training
(`caption_report`, experiments/caption.py).

Vocabulary: the training captions' words ('<pad>' 0, '<s>' 1, '</s>' 2,
'<unk>' 3, then by count), written to WORKDIR/vocabulary.txt.

Batch: 'inputs' [B, H, W, C] uint8 images, 'lengths' [B] ones (images have
no time axis), 'decoder_inputs' [B, T], 'targets' [B, T] (EOS included),
'target_lengths' [B] (0 on padding rows).

Loss: mean token cross-entropy, plus for soft attention config.attention_penalty
times Xu et al.'s doubly stochastic term sum_i (1 - sum_t alpha_ti)^2 per
caption, divided by the batch's mean caption length (so it is per token,
like the cross-entropy).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np

import input_pipeline
from corpora import captions as caption_data
from models import captioner
from models import seq2seq as s2s
from tasks import base
from tasks import caption_metrics
from tasks import seq2seq

VOCABULARY_FILE = "vocabulary.txt"
DATA_STATS_FILE = "data_stats.json"
SPECIAL = ("<pad>", "<s>", "</s>", "<unk>")
UNK = 3
# Teacher-forced during training (model selection); every split is decoded
# and scored after training (`caption_report`).
EVAL_SPLITS = ("valid",)


class WordVocabulary:
  """SPECIAL then words; encode(text) -> ids (no EOS), decode(ids) -> text
  (stops at EOS, skips PAD and BOS)."""

  def __init__(self, words: Sequence[str]):
    self.tokens = [*SPECIAL, *[w for w in words if w not in SPECIAL]]
    self._ids = {w: i for i, w in enumerate(self.tokens)}

  @classmethod
  def build(cls, captions: Sequence[str], min_count: int = 1) -> "WordVocabulary":
    """The words of the captions seen >= min_count times, most frequent first
    (`input_pipeline.build_word_vocabulary`'s order, without its specials)."""
    words = input_pipeline.build_word_vocabulary(
        (c.split() for c in captions), min_count=min_count).tokens
    return cls(words[2:])   # after '<pad>', '<unk>'

  @property
  def size(self) -> int:
    return len(self.tokens)

  def unknown(self, text: str) -> list[str]:
    return [w for w in text.split() if w not in self._ids]

  def encode(self, text: str) -> list[int]:
    return [self._ids.get(w, UNK) for w in text.split()]

  def decode(self, ids: Sequence[int]) -> str:
    words = []
    for i in ids:
      i = int(i)
      if i == s2s.EOS:
        break
      if i > s2s.BOS:
        words.append(self.tokens[i])
    return " ".join(words)

  def file(self) -> bytes:
    return input_pipeline.vocabulary_file(self)


@dataclasses.dataclass(frozen=True)
class Pairs:
  """One split as (image, reference) pairs: images [M, H, W, C] uint8,
  image_of [P] (the pair's image), captions [P] id lists (no EOS)."""
  images: np.ndarray
  image_of: np.ndarray
  captions: list[list[int]]


def stack_images(examples: Sequence[caption_data.CaptionExample],
                 image_size: int = 0) -> np.ndarray:
  """[M, H, W, C] uint8; image_size > 0 resizes each to S x S (bilinear)
  first. Images of different sizes need image_size."""
  images = [e.image for e in examples]
  if image_size:
    from PIL import Image  # pylint: disable=g-import-not-at-top
    images = [np.asarray(Image.fromarray(i.squeeze(-1) if i.shape[-1] == 1 else i)
                         .resize((image_size, image_size), Image.BILINEAR),
                         np.uint8).reshape(image_size, image_size, i.shape[-1])
              for i in images]
  shapes = {i.shape for i in images}
  if len(shapes) > 1:
    raise ValueError(f"images: {len(shapes)} different sizes (e.g. {sorted(shapes)[:2]}); "
                     f"set config.image_size to resize them")
  return np.stack(images)


def make_pairs(examples: Sequence[caption_data.CaptionExample],
               vocab: WordVocabulary, image_size: int = 0) -> Pairs:
  images = stack_images(examples, image_size)
  image_of, captions = [], []
  for i, example in enumerate(examples):
    for reference in example.captions:
      image_of.append(i)
      captions.append(vocab.encode(reference))
  return Pairs(images, np.asarray(image_of, np.int64), captions)


def make_rows(pairs: Pairs):
  """-> rows(indices [B] (-1: padding row), T) -> the batch dict."""
  def rows(indices: np.ndarray, steps: int) -> dict[str, np.ndarray]:
    batch = {"inputs": np.zeros((len(indices), *pairs.images.shape[1:]), np.uint8),
             "lengths": np.ones(len(indices), np.int32),
             "decoder_inputs": np.zeros((len(indices), steps), np.int32),
             "targets": np.zeros((len(indices), steps), np.int32),
             "target_lengths": np.zeros(len(indices), np.int32)}
    for row, i in enumerate(indices):
      if i < 0:
        continue
      target = [*pairs.captions[i], s2s.EOS]
      batch["inputs"][row] = pairs.images[pairs.image_of[i]]
      batch["targets"][row, :len(target)] = target
      batch["decoder_inputs"][row, 0] = s2s.BOS
      batch["decoder_inputs"][row, 1:len(target)] = target[:-1]
      batch["target_lengths"][row] = len(target)
    return batch
  return rows


def make_loss(penalty: float):
  """(outputs (logits, attention weights), batch) -> (loss, sums)."""
  def loss(outputs, batch):
    logits, weights = outputs
    mean_nll, sums = seq2seq.loss(logits, batch)
    if penalty:
      lengths = batch["target_lengths"]
      per_caption = captioner.attention_penalty(weights, lengths)
      real = (lengths > 0).astype(per_caption.dtype)
      term = jnp.sum(per_caption * real) / jnp.maximum(jnp.sum(lengths), 1)
      sums["attention_penalty"] = jnp.sum(per_caption * real)
      return mean_nll + penalty * term, sums
    return mean_nll, sums
  return loss


def summarize(totals) -> dict[str, float]:
  metrics = seq2seq.summarize(totals)
  if "attention_penalty" in totals:
    metrics["attention_penalty"] = base.ratio(totals, "attention_penalty", "sequences")
  return metrics


@dataclasses.dataclass(frozen=True)
class CaptionTask(base.Task):
  """A Task whose model reads the decoder inputs and returns the attention
  weights with the logits; keeps its vocabulary."""
  vocab: Any = None

  def apply(self, params, batch, rng, carry=(), *, train: bool):
    outputs = self.model.apply(
        {"params": params}, batch["inputs"], None, batch["decoder_inputs"],
        deterministic=not train, rngs={"dropout": rng} if train else None,
        method="teacher_forced")
    return outputs, carry

  def init_params(self, rng, batch):
    return _init_params(self.model, rng, batch["inputs"], batch["decoder_inputs"])


def _init_params(model, rng, images, decoder_inputs):
  return jax.jit(lambda r, i, d: model.init(r, i, None, d)["params"])(
      rng, images, decoder_inputs)


def parse_channels(spec: str) -> tuple[int, ...]:
  """'32,64,64' -> (32, 64, 64): positive integers."""
  try:
    channels = tuple(int(c) for c in spec.split(","))
  except ValueError:
    channels = ()
  if not channels or min(channels) < 1:
    raise ValueError(f"expected positive integers separated by commas (one per "
                     f"conv block), got {spec!r}")
  return channels


def channels_of(config) -> tuple[int, ...]:
  try:
    return parse_channels(config.conv_channels)
  except ValueError as e:
    raise ValueError(f"conv_channels: {e}") from None


def build_model(config, vocab_size: int) -> captioner.Captioner:
  return captioner.Captioner(
      vocab_size=vocab_size, decoder_kind=config.decoder, embed_size=config.embed_size,
      hidden_size=config.hidden_size, num_layers=config.num_layers, cell=config.cell,
      channels=channels_of(config), dropout_rate=config.dropout_rate,
      cell_options=flax.core.FrozenDict(base.cell_options(config)))


def read_examples(config) -> dict[str, list[caption_data.CaptionExample]]:
  """Every split of config.dataset, shortened by max_train_size /
  max_eval_size when set."""
  out = {}
  for split in caption_data.SPLITS.get(config.dataset, ("train", "valid", "test")):
    examples = caption_data.read_split(config.dataset, split,
                                       data_dir=config.data_dir or None)
    limit = config.max_train_size if split == "train" else config.max_eval_size
    out[split] = list(examples[:limit] if limit else examples)
  return out


def build(config) -> CaptionTask:
  examples = read_examples(config)
  vocab = WordVocabulary.build([c for e in examples["train"] for c in e.captions],
                               config.min_count)
  pairs = {split: make_pairs(part, vocab, config.image_size)
           for split, part in examples.items()}
  longest = max(len(c) for p in pairs.values() for c in p.captions) + 1   # EOS
  train = pairs["train"]
  train_batches = input_pipeline.BucketedBatches(
      [len(c) + 1 for c in train.captions], (longest,), make_rows(train),
      config.batch_size, config.seed)
  eval_splits = {split: input_pipeline.bucketed_eval_batches(
      [len(c) + 1 for c in p.captions], (longest,), make_rows(p), config.eval_batch_size)
                 for split, p in pairs.items() if split in EVAL_SPLITS}
  stats = {"vocabulary_size": vocab.size, "longest_caption": longest,
           **{split: {"images": len(examples[split]), "captions": len(p.captions),
                      "unknown_rate": float(np.mean([i == UNK for c in p.captions
                                                     for i in c]))}
              for split, p in pairs.items()}}
  penalty = config.attention_penalty if config.decoder == "soft_attention" else 0.0
  return CaptionTask(
      model=build_model(config, vocab.size), loss=make_loss(penalty),
      summarize=summarize, train_batches=train_batches, eval_splits=eval_splits,
      examples_in=lambda batch: int(np.sum(batch["target_lengths"] > 0)),
      run_files={VOCABULARY_FILE: vocab.file(),
                 DATA_STATS_FILE: (json.dumps(stats, indent=1, sort_keys=True)
                                   + "\n").encode("utf-8")},
      vocab=vocab)


# ----------------------------------------------------------------------------
# Decoding and the caption metrics.

def decode_images(model, params, images: np.ndarray, *, beam_size: int, max_len: int,
                  alpha: float, batch_size: int = 64) -> list[list[int]]:
  """images [M, H, W, C] -> the best caption's ids per image (EOS cut), by
  greedy decoding (beam_size 1) or beam search."""
  out = []
  for start in range(0, len(images), batch_size):
    chunk = jnp.asarray(images[start:start + batch_size])
    if beam_size == 1:
      hyps = s2s.greedy_decode(model, params, chunk, None, max_len=max_len)
      tokens, lengths = hyps.tokens, hyps.lengths
    else:
      hyps = s2s.beam_search(model, params, chunk, None, beam_size=beam_size,
                             max_len=max_len, alpha=alpha)
      tokens, lengths = hyps.tokens[:, 0], hyps.lengths[:, 0]
    for row, n in zip(np.asarray(tokens), np.asarray(lengths)):
      out.append([int(t) for t in row[:n] if t != s2s.EOS])
  return out


def caption_report(config, model, params, vocab: WordVocabulary,
                   examples: Sequence[caption_data.CaptionExample]) -> dict[str, Any]:
  """Greedy and beam (config.beam_size) captions of the examples' images,
  scored against all their references (`tasks.caption_metrics`), overall
  and by number of objects (digits: of digits)."""
  images = stack_images(examples, config.image_size)
  references = [list(e.captions) for e in examples]
  report: dict[str, Any] = {}
  for name, beam in (("greedy", 1), (f"beam{config.beam_size}", config.beam_size)):
    ids = decode_images(model, params, images, beam_size=beam,
                        max_len=config.max_decode_len, alpha=config.length_alpha)
    hypotheses = [vocab.decode(i) for i in ids]
    scores = caption_metrics.caption_scores(hypotheses, references)
    by_count = {}
    for count in sorted({e.num_objects for e in examples}):
      chosen = [k for k, e in enumerate(examples) if e.num_objects == count]
      by_count[str(count)] = caption_metrics.caption_scores(
          [hypotheses[k] for k in chosen], [references[k] for k in chosen])
    report[name] = {"scores": scores, "by_objects": by_count,
                    "captions": hypotheses}
  return report
