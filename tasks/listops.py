"""ListOps (Nangia & Bowman 2018): the value (0-9) of a nested list expression.

Models (config.model):
  'lstm', 'bilstm'    read the token sequence ('[MAX 2 9 ]' -> 4 tokens) with a
                      recurrent encoder (`models.classifier`); config.cell etc.
  'tree_rnn'          Socher et al.'s recursive net over the gold binary tree
  'tree_lstm'         binary Tree-LSTM (Tai et al. 2015) over the gold tree
  'child_sum'         Child-Sum Tree-LSTM over the same binary tree
config.tree_form picks the gold tree: 'binary' is the paper's binarisation
(`corpora.listops.gold_tree`): every token is a leaf, internal nodes have no
token; 'syntax' (child_sum only) is the expression's own n-ary tree
(`corpora.listops.syntax_tree`): an operator node carries its operator and
has its arguments as children. The root's h goes
through config.mlp_layers ReLU layers to 10 logits.

Batches (B = batch, T = tokens, M/N/S/W: see `models.trees`):
  sequence models: 'inputs' [B, T] token ids, 'lengths' [B], 'labels' [B]
  tree models: `models.trees.batch_dict` ('inputs' = node slots [B, N],
    'lengths' [B] nodes, 'tokens' [M] (-1: none), 'children' [M, 2],
    'levels' [M], 'roots' [B], 'schedule' [S, W]) and 'labels' [B]
with T, M, N, S, W bucketed (`models.trees.bucket`) so jit compiles few
programs. Training batches come from a grain MapDataset shuffled anew each
epoch (config.seed); the position is the batch index, so runs resume exactly.
Metrics: accuracy and mean cross-entropy on 'validation' (as 'valid') and
'test', and accuracy_MIN / _MAX / _MED / _SM: accuracy by root operator.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from corpora import listops as listops_data
from models import classifier
from models import recursive
from models import trees as tree_lib
from models.checks import check_one_of
from tasks import base

SEQUENCE_MODELS = ("lstm", "bilstm")
TREE_MODELS = {"tree_rnn": "rnn", "tree_lstm": "tree_lstm", "child_sum": "child_sum"}
TREE_FORMS = ("binary", "syntax")
TOKEN_IDS = {token: i for i, token in enumerate(listops_data.VOCAB)}


def encode(text: str) -> list[int]:
  try:
    return [TOKEN_IDS[t] for t in text.split()]
  except KeyError as e:
    raise ValueError(f"text: unknown ListOps token {e.args[0]!r} in "
                     f"{text[:80]!r}") from None


def to_tree(text: str) -> tree_lib.Tree:
  """The gold binary tree of an expression: leaves = tokens, then internal nodes."""
  ids = encode(text)
  children = listops_data.gold_tree(text.split())
  return tree_lib.Tree(ids + [-1] * (len(children) - len(ids)), children)


def to_syntax_tree(text: str) -> tree_lib.Tree:
  """The n-ary expression tree: operator nodes carry their operator token."""
  labels, children = listops_data.syntax_tree(text.split())
  return tree_lib.Tree([TOKEN_IDS[t] for t in labels], children)


def prepare(text: str, index: int = 0, form: str = "binary") -> tree_lib.PreparedTree:
  if form == "syntax":
    return tree_lib.prepare_tree(to_syntax_tree(text), index=index,
                                  max_children=listops_data.MAX_ARGS)
  return tree_lib.prepare_tree(to_tree(text), index=index, arity=2,
                                composition="binary")


def pad_ids(ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
  """B token id lists -> (inputs [B, T] int32, zero-padded, T bucketed;
  lengths [B] int32)."""
  steps = tree_lib.bucket(max(len(x) for x in ids), 8)
  inputs = np.zeros((len(ids), steps), np.int32)
  for b, x in enumerate(ids):
    inputs[b, :len(x)] = x
  return inputs, np.asarray([len(x) for x in ids], np.int32)


def sequence_batch(examples: Sequence[tuple[str, int]]) -> dict[str, np.ndarray]:
  """-> {'inputs' [B, T], 'lengths' [B], 'labels' [B]}, T bucketed."""
  inputs, lengths = pad_ids([encode(text) for text, _ in examples])
  return {"inputs": inputs, "lengths": lengths,
          "labels": np.asarray([label for _, label in examples], np.int32)}


def tree_batch(trees: Sequence[tree_lib.PreparedTree], labels: Sequence[int], *,
               pack: bool = True) -> dict[str, np.ndarray]:
  """Prepared gold trees -> the tree models' batch dict
  (`models.trees.batch_dict` plus 'labels')."""
  tb = tree_lib.batch_prepared(trees, pack=pack)
  return {**tree_lib.batch_dict(tb), "labels": np.asarray(labels, np.int32)}


class ExampleBatches:
  """Endless shuffled batches of a fixed example list (grain MapDataset).

  Batch k holds positions k*B .. k*B + B - 1 of the examples repeated and
  reshuffled every epoch with `seed`; get_state()/set_state() is {'step': k}.
  """

  def __init__(self, num_examples: int, make_batch, batch_size: int, seed: int):
    import grain  # pylint: disable=g-import-not-at-top
    if batch_size <= 0:
      raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
    self._order = grain.MapDataset.range(num_examples).shuffle(seed=seed).repeat(None)
    self._make_batch, self._batch_size = make_batch, batch_size
    self._num_examples, self._seed = num_examples, seed
    self._step = 0

  def __iter__(self):
    return self

  def __next__(self):
    start = self._step * self._batch_size
    indices = [self._order[start + j] for j in range(self._batch_size)]
    self._step += 1
    return self._make_batch(indices)

  def get_state(self) -> dict[str, Any]:
    return {"kind": "examples", "step": self._step, "seed": self._seed,
            "num_examples": self._num_examples, "batch_size": self._batch_size}

  def set_state(self, state: dict[str, Any]) -> None:
    expected = {k: v for k, v in self.get_state().items() if k != "step"}
    if {k: state.get(k) for k in expected} != expected:
      raise ValueError(f"data iterator state {state} does not belong to this "
                       f"example stream ({expected})")
    self._step = int(state["step"])


@dataclasses.dataclass(frozen=True)
class TreeTask(base.Task):
  """A Task whose model reads a TreeBatch built from the batch dict."""

  def apply(self, params, batch, rng, carry=(), *, train: bool):
    del rng
    return self.model.apply({"params": params},
                            tree_lib.tree_batch_from_dict(batch),
                            deterministic=not train), carry

  def init_params(self, rng, batch):
    return _init_tree(self.model, rng, tree_lib.tree_batch_from_dict(batch))


@functools.partial(jax.jit, static_argnames="model")
def _init_tree(model, rng, trees):
  return model.init(rng, trees)["params"]


OPERATOR_NAMES = {TOKEN_IDS[op]: op.lstrip("[") for op in listops_data.OPERATORS}


def root_operator(batch) -> jax.Array:
  """[B] token id of each expression's root operator: its first token, which
  is node 0 of its tree in both tree forms (tree batches: 'tokens' [M] read
  at 'inputs' = slots [B, N]) and position 0 of a sequence batch."""
  inputs = jnp.asarray(batch["inputs"])
  if "tokens" in batch:
    return jnp.asarray(batch["tokens"])[inputs[:, 0]]
  return inputs[:, 0]


def loss(logits, batch):
  """logits [B, 10] -> (mean cross-entropy, sums: nll, correct, count, and
  correct_OP / count_OP by root operator OP in MIN, MAX, MED, SM)."""
  nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"])
  correct = jnp.argmax(logits, -1) == batch["labels"]
  sums = {"nll": jnp.sum(nll), "correct": jnp.sum(correct),
          "count": jnp.asarray(logits.shape[0], jnp.float32)}
  op = root_operator(batch)
  for token, name in OPERATOR_NAMES.items():
    sums[f"correct_{name}"] = jnp.sum(correct & (op == token))
    sums[f"count_{name}"] = jnp.sum(op == token).astype(jnp.float32)
  return jnp.mean(nll), sums


def summarize(totals):
  """accuracy, loss, examples, and accuracy_OP by root operator."""
  out = {"accuracy": base.ratio(totals, "correct", "count"),
         "loss": base.ratio(totals, "nll", "count"),
         "examples": int(totals["count"])}
  for name in OPERATOR_NAMES.values():
    out[f"accuracy_{name}"] = base.ratio(totals, f"correct_{name}", f"count_{name}")
  return out


def build_model(config):
  if config.model in SEQUENCE_MODELS:
    encoder = base.encoder(config, vocab_size=len(TOKEN_IDS),
                           embed_size=config.embed_size,
                           bidirectional=config.model == "bilstm")
    return classifier.SequenceClassifier(encoder, num_outputs=10)
  encoder = recursive.TreeEncoder(
      composition=TREE_MODELS[config.model], hidden_size=config.hidden_size,
      vocab_size=len(TOKEN_IDS), embed_size=config.embed_size,
      forget_bias=config.forget_bias)
  return recursive.TreeClassifier(encoder, num_outputs=10,
                                  mlp_layers=config.mlp_layers,
                                  mlp_size=config.mlp_size or config.hidden_size)


def build(config) -> base.Task:
  models = SEQUENCE_MODELS + tuple(TREE_MODELS)
  check_one_of("model", config.model, models)
  data = {split: listops_data.read_split(split, data_dir=config.data_dir or None)
          for split in ("train", "validation", "test")}
  limit = config.get("max_train_size", 0)
  if limit:
    data["train"] = data["train"][:limit]
  eval_limit = config.get("max_eval_size", 0)
  if eval_limit:
    data = {k: (v if k == "train" else v[:eval_limit]) for k, v in data.items()}
  model = build_model(config)
  is_tree = config.model in TREE_MODELS
  if is_tree:
    check_one_of("tree_form", config.tree_form, TREE_FORMS)
    arity = model.encoder.make_composition().arity
    if config.tree_form == "syntax" and arity is not None:
      raise ValueError(f"tree_form: 'syntax' trees have up to "
                       f"{listops_data.MAX_ARGS} children per node; model "
                       f"{config.model!r} needs exactly {arity}, use "
                       f"'child_sum'")
    trees = {split: [prepare(text, i, config.tree_form)
                     for i, (text, _) in enumerate(examples)]
             for split, examples in data.items()}

    def make(split, indices):
      return tree_batch([trees[split][i] for i in indices],
                        [data[split][i][1] for i in indices],
                        pack=config.pack_schedule)
  else:
    def make(split, indices):
      return sequence_batch([data[split][i] for i in indices])

  def eval_batches(split):
    n, size = len(data[split]), config.eval_batch_size
    return [make(split, range(s, min(s + size, n))) for s in range(0, n, size)]

  train_batches = ExampleBatches(len(data["train"]), functools.partial(make, "train"),
                                 config.batch_size, config.seed)
  cls = TreeTask if is_tree else base.Task
  return cls(model=model, loss=loss, summarize=summarize,
             train_batches=train_batches,
             eval_splits={"valid": eval_batches("validation"),
                          "test": eval_batches("test")})

