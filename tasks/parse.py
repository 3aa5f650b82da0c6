"""Learning to parse (Socher et al. 2011): greedy merge parser.

Data (config.dataset):
  'listops'  ListOps expressions (`corpora.listops`) with the tree removed:
             the parser sees the token sequence ('[MAX 2 9 [MIN 4 7 ] 0 ]',
             brackets ']' included as tokens) and must recover the paper's
             binary gold tree (`corpora.listops.gold_tree`).
  'ud_tr'    Turkish Web Treebank dependency trees (`corpora.ud`), binarised
             (right dependents, then left ones, nearest first; projective
             sentences of <= config.max_length tokens); the parser reads the
             UPOS tags (ids in order of first appearance in train).
Training (config.objective, `models.tree_parser`): 'local_xent' (default)
or 'local_margin' run the merge scan teacher-forced along the gold tree and
score every step (the gold pairs against the other adjacent pairs;
config.gold_pairs 'all' or 'leftmost'); 'global_margin' decodes
loss-augmented (+ config.margin per non-gold span) and minimises
max(0, s(y_hat) + Delta - s(gold)). The reported 'loss' is the objective's
mean per merge step (local) or per sentence (global). Evaluation decodes
greedily (config.beam_size > 1: beam search, `tree_parser.beam_parse`)
without augmentation and reports corpus-level unlabeled bracketing
precision, recall and F1 (whole-sentence span and single tokens not
counted), the exact-tree rate, and the F1 of the left- and right-branching
trees on the same sentences ('left_branching_f1', 'right_branching_f1'), on
'valid' (the validation split) and 'test' (the first config.max_eval_size
test sentences; 0: all).

Batches: 'inputs' [B, T] token ids, 'lengths' [B], the gold trees as merge
sequences ('gold_merges' [B, T - 1, 2], 'gold_active' [B, T - 1],
`models.tree_parser.merge_order`) and 'gold_spans' [B, T + 1, T + 1] bool;
T bucketed, so T is the only shape that varies.
"""

from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp
import numpy as np

from corpora import listops as listops_data
from models import trees as tree_lib
from models import tree_parser
from models.checks import check_one_of
from tasks import base
from tasks import listops as listops_task

DATASETS = ("listops", "ud_tr")


def make_batch(examples, prepared, spans) -> dict[str, np.ndarray]:
  """examples: [(token ids, ...)], gold trees' child lists (leaves first,
  internal nodes in merge order), their span lists -> the batch dict."""
  ids = [x for x, _ in examples]
  inputs, lengths = listops_task.pad_ids(ids)
  steps = inputs.shape[1]
  merges = [tree_parser.merge_order(children, len(x), steps)
            for children, x in zip(prepared, ids)]
  return {"inputs": inputs, "lengths": lengths,
          "gold_merges": np.stack([m for m, _ in merges]),
          "gold_active": np.stack([a for _, a in merges]),
          "gold_spans": tree_parser.gold_span_table(spans, steps)}


@dataclasses.dataclass(frozen=True)
class ParseTask(base.Task):
  """apply -> the parser's dict (`models.tree_parser.GreedyParser`): 'parse',
  'loss', 'loss_count' and the objective's terms."""

  def apply(self, params, batch, rng, carry=(), *, train: bool):
    del rng
    return self.model.apply({"params": params}, batch["inputs"], batch["lengths"],
                            (batch["gold_merges"], batch["gold_active"]),
                            batch["gold_spans"],
                            augment=train), carry

  def init_params(self, rng, batch):
    return self.model.init(rng, batch["inputs"], batch["lengths"])["params"]


def branching_matches(gold_spans, lengths):
  """[B] non-trivial gold spans hit by the left-branching tree ((0, k), k =
  2 .. n - 1) and by the right-branching tree ((k, n), k = 1 .. n - 2); both
  trees have n - 2 such spans, as does every binary gold tree."""
  b, size = gold_spans.shape[:2]
  k = jnp.arange(size)[None, :]
  n = lengths[:, None]
  left = gold_spans[:, 0, :] & (k >= 2) & (k <= n - 1)
  right = gold_spans[jnp.arange(b)[:, None], k, n] & (k >= 1) & (k <= n - 2)
  return jnp.sum(left, 1), jnp.sum(right, 1)


def loss(outputs, batch):
  """The objective's mean (sum of 'loss' / sum of 'loss_count': per merge
  step for the local objectives, per sentence for 'global_margin'); sums of
  bracket counts over non-trivial spans, for the parse and for the left- and
  right-branching baselines."""
  total = jnp.sum(outputs["loss"])
  count = jnp.sum(outputs["loss_count"])
  parse = outputs["parse"]
  lengths = batch["lengths"]
  rows = jnp.arange(lengths.shape[0])[:, None]
  start, end = parse.spans[..., 0], parse.spans[..., 1]
  hit = batch["gold_spans"][rows, start, end]
  counted = parse.active & ~((start == 0) & (end == lengths[:, None]))
  left, right = branching_matches(batch["gold_spans"], lengths)
  sums = {"loss": total,
          "loss_count": count,
          "count": jnp.asarray(lengths.shape[0], jnp.float32),
          "matched": jnp.sum(counted & hit),
          "predicted": jnp.sum(counted),
          "gold": jnp.sum(jnp.maximum(lengths - 2, 0)),
          "left_matched": jnp.sum(left),
          "right_matched": jnp.sum(right),
          "exact": jnp.sum(jnp.all(hit | ~parse.active, 1))}
  return total / jnp.maximum(count, 1.0), sums


def summarize(totals):
  scores = tree_parser.bracket_scores(float(totals["matched"]),
                                      float(totals["predicted"]),
                                      float(totals["gold"]))
  gold = float(totals["gold"])
  return {"loss": base.ratio(totals, "loss", "loss_count"), **scores,
          "exact": base.ratio(totals, "exact", "count"),
          "left_branching_f1": float(totals["left_matched"]) / gold if gold else 1.0,
          "right_branching_f1": float(totals["right_matched"]) / gold if gold else 1.0,
          "sentences": int(totals["count"])}


def _listops_examples(split, config):
  data = listops_data.read_split(split, data_dir=config.data_dir or None)
  limit = config.max_train_size if split == "train" else config.max_eval_size
  data = data[:limit] if limit else data
  examples, prepared, spans = [], [], []
  for i, (text, _) in enumerate(data):
    tree = listops_task.to_tree(text)
    n = len(text.split())
    examples.append((tree.tokens[:n], n))
    tree_lib.check_tree(tree.children, index=i, arity=2)
    prepared.append(tree.children)
    spans.append(tree_parser.spans(tree.children, n))
  return examples, prepared, spans


def _ud_examples(split, config, vocab):
  from corpora import ud  # pylint: disable=g-import-not-at-top
  data, _ = ud.read_split(split, max_length=config.max_length)
  limit = config.max_train_size if split == "train" else config.max_eval_size
  data = data[:limit] if limit else data
  examples, trees, spans = [], [], []
  for i, (tags, _, children) in enumerate(data):
    for tag in tags:
      if split == "train" and tag not in vocab:
        vocab[tag] = len(vocab)
    ids = [vocab.get(tag, 0) for tag in tags]
    tree_lib.check_tree(children, index=i, arity=2)
    examples.append((ids, len(ids)))
    trees.append(children)
    spans.append(tree_parser.spans(children, len(ids)))
  return examples, trees, spans


def build(config) -> ParseTask:
  check_one_of("dataset", config.dataset, DATASETS)
  objective = config.get("objective", "global_margin")
  check_one_of("objective", objective, tree_parser.OBJECTIVES)
  gold_pairs = config.get("gold_pairs", "all")
  check_one_of("gold_pairs", gold_pairs, tree_parser.GOLD_PAIRS)
  names = (("train", "train"), ("valid", "validation"), ("test", "test"))
  if config.dataset == "listops":
    splits = {name: _listops_examples(split, config) for name, split in names}
    vocab_size = len(listops_task.TOKEN_IDS)
  else:
    vocab = {"<unk>": 0}
    splits = {name: _ud_examples(split, config, vocab) for name, split in names}
    vocab_size = len(vocab)

  def make(name, indices):
    examples, prepared, spans = splits[name]
    return make_batch([examples[i] for i in indices], [prepared[i] for i in indices],
                      [spans[i] for i in indices])

  def eval_batches(name):
    n, size = len(splits[name][0]), config.eval_batch_size
    return [make(name, range(s, min(s + size, n))) for s in range(0, n, size)]

  model = tree_parser.GreedyParser(
      hidden_size=config.hidden_size, vocab_size=vocab_size,
      embed_size=config.embed_size, margin=config.margin, objective=objective,
      gold_pairs=gold_pairs, beam_size=int(config.get("beam_size", 1)),
      beam_score=config.get("beam_score", ""))
  train_batches = listops_task.ExampleBatches(
      len(splits["train"][0]), functools.partial(make, "train"), config.batch_size,
      config.seed)
  return ParseTask(model=model, loss=loss, summarize=summarize,
                   train_batches=train_batches,
                   eval_splits={"valid": eval_batches("valid"),
                                "test": eval_batches("test")})
