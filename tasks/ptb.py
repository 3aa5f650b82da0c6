"""Language modelling on Penn Treebank (Zaremba et al. 2014), word or character level.

The training text is one stream of token ids (lines ended by '<eos>') cut
into B contiguous rows and read T steps at a time (`input_pipeline.
TBPTTBatches`); the LSTM state runs on from batch to batch (truncated BPTT)
and is zeroed at each epoch start (the batch's 'reset' flag). Valid and test
are read the same way with the eval batch size, starting from a zero state,
every token of each row but its first predicted (B * (N // B - 1) targets).

Loss (config.loss_over_time):
  'sum'  Zaremba et al.'s cost: per row, the sum over the T steps of the
         token cross-entropy, averaged over the B rows (= T x the mean token
         cross-entropy). Their learning rate 1 and clipping norm 5 are tuned
         for this scale, so the paper's configs use it.
  'mean' the mean token cross-entropy (the same updates need lr x T and
         clip / T, e.g. lr 20 and clip 0.25 as in PyTorch's word LM example).
Metrics are sums (nll, tokens, correct) over real tokens only: padding steps
(past 'lengths' in the last eval batch) count in neither loss nor accuracy.
summarize: nll per token, perplexity = exp(nll / tokens), accuracy, and at
character level bits per character = nll / tokens / ln 2.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

import input_pipeline
from models import language_model
from models.checks import check_one_of
from tasks import base

LOSS_OVER_TIME = ("sum", "mean")


@dataclasses.dataclass(frozen=True)
class LanguageModelTask(base.Task):
  """A Task whose batches carry 'reset' [B] for the model's carried state."""
  vocabulary: Any = None

  def init_params(self, rng, batch):
    """Jitted, and cached per model (op-by-op init takes seconds on CPU)."""
    return _init_params(self.model, rng, batch["inputs"], batch.get("lengths"),
                        self.carry_for(batch))

  def apply(self, params, batch, rng, carry=(), *, train: bool):
    """-> (logits [B, T, V], new carry)."""
    return self.model.apply(
        {"params": params}, batch["inputs"], batch.get("lengths"), carry=carry,
        reset=batch.get("reset"), deterministic=not train,
        rngs={"dropout": rng} if train else None)


@functools.partial(jax.jit, static_argnames="model")
def _init_params(model, rng, inputs, lengths, carry):
  return model.init(rng, inputs, lengths, carry=carry)["params"]


def token_mask(batch, steps: int) -> jnp.ndarray:
  """[B, T] bool: True on real target tokens (all of them without 'lengths')."""
  if batch.get("lengths") is None:
    return jnp.ones(batch["targets"].shape, bool)
  return base.step_mask(batch["lengths"], steps)


def loss(logits, batch, *, over_time: str = "sum"):
  """logits [B, T, V], batch targets [B, T] -> (objective, sums).

  sums: 'nll' (summed cross-entropy in nats), 'tokens', 'correct' (argmax
  hits), over real tokens only.
  """
  batch_size, steps, vocab = logits.shape
  nll = optax.softmax_cross_entropy_with_integer_labels(
      logits.reshape(batch_size * steps, vocab),
      batch["targets"].reshape(batch_size * steps)).reshape(batch_size, steps)
  mask = token_mask(batch, steps).astype(nll.dtype)
  total = jnp.sum(nll * mask)
  tokens = jnp.sum(mask)
  correct = jnp.sum((jnp.argmax(logits, -1) == batch["targets"]) * mask)
  if over_time == "sum":
    objective = total / batch_size
  else:
    objective = total / jnp.maximum(tokens, 1.0)
  return objective, {"nll": total, "tokens": tokens, "correct": correct}


def summarize(totals, *, level: str = "word"):
  nll = base.ratio(totals, "nll", "tokens")
  metrics = {"perplexity": math.exp(min(nll, 700.0)), "nll": nll,
             "accuracy": base.ratio(totals, "correct", "tokens"),
             "tokens": int(totals["tokens"])}
  if level == "char":
    metrics["bpc"] = nll / math.log(2.0)
  return metrics


def build_model(config, vocab_size: int) -> language_model.LanguageModel:
  return language_model.LanguageModel(
      vocab_size=vocab_size, hidden_size=config.hidden_size,
      num_layers=config.num_layers, cell=config.cell,
      embed_size=config.embed_size, dropout_rate=config.dropout_rate,
      tie_embeddings=config.tie_embeddings,
      init_scale=config.init_scale or None,
      cell_options=flax.core.FrozenDict(base.cell_options(config)),
      unroll=config.unroll)


def build(config) -> LanguageModelTask:
  check_one_of("loss_over_time", config.loss_over_time, LOSS_OVER_TIME)
  if not 0.0 <= config.dropout_rate < 1.0:
    raise ValueError(f"dropout_rate: expected a value in [0, 1), got "
                     f"{config.dropout_rate}")
  if config.get("learn_initial_state"):
    raise ValueError("learn_initial_state: not supported by the language model, "
                     "whose state is carried from batch to batch")
  splits = {"train": config.train_split, "valid": config.valid_split,
            "test": config.test_split}
  vocab, streams = input_pipeline.load_lm_corpus(
      config.dataset, list(splits.values()), level=config.level,
      data_dir=config.data_dir or None, text_feature=config.text_feature)
  train_ids = streams[splits["train"]]
  if config.train_tokens and config.train_tokens != len(train_ids):
    raise ValueError(
        f"train_tokens: the config says {config.train_tokens} (it sets the "
        f"steps per epoch) but {config.dataset} {config.level} "
        f"{splits['train']} has {len(train_ids)} tokens; set "
        f"--config.train_tokens={len(train_ids)}")
  train_batches = input_pipeline.TBPTTBatches(train_ids, config.batch_size,
                                              config.seq_len)
  model = build_model(config, len(vocab))
  return LanguageModelTask(
      model=model,
      loss=functools.partial(loss, over_time=config.loss_over_time),
      summarize=functools.partial(summarize, level=config.level),
      train_batches=train_batches,
      eval_splits={name: input_pipeline.tbptt_eval_batches(
          streams[splits[name]], config.eval_batch_size, config.seq_len)
                   for name in ("valid", "test")},
      solved=None,
      examples_in=lambda batch: int(batch["inputs"].size),  # tokens
      initial_carry=model.initial_carry,
      vocabulary=vocab)
