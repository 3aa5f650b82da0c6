"""ListOps: generator against an independent evaluator, gold trees, the TFDS
builder round trip, and smoke runs of the task through train_and_evaluate."""

import glob
import json
import os

import numpy as np
import pytest

import train
from corpora import listops
from experiments.configs import listops as listops_config
from models import trees as tree_lib
from tasks import listops as listops_task


def stack_evaluate(text):
  """An independent evaluator: a token stack, no recursion, no shared code."""
  stack = []
  for token in text.split():
    if token == "]":
      args = []
      while not isinstance(stack[-1], str):
        args.append(stack.pop())
      op = stack.pop()
      args.reverse()
      if op == "[MIN":
        value = min(args)
      elif op == "[MAX":
        value = max(args)
      elif op == "[SM":
        value = sum(args) % 10
      else:  # [MED: the lower-middle mean for an even count, truncated
        ordered = sorted(args)
        k = len(ordered)
        value = ordered[k // 2] if k % 2 else (ordered[k // 2 - 1] + ordered[k // 2]) // 2
      stack.append(value)
    elif token.startswith("["):
      stack.append(token)
    else:
      stack.append(int(token))
  assert len(stack) == 1
  return stack[0]


def depth_and_args(text):
  depth = most = 0
  counts = []
  for token in text.split():
    if token.startswith("["):
      if counts:
        counts[-1] += 1
      counts.append(0)
      depth = max(depth, len(counts))
    elif token == "]":
      most = max(most, counts.pop())
    else:
      counts[-1] += 1
  return depth, most


def test_generator_labels_limits_and_uniqueness():
  splits = listops.generate_splits({"train": 3000, "validation": 300, "test": 300})
  texts = [t for examples in splits.values() for t, _ in examples]
  assert len(set(texts)) == len(texts)                 # unique across splits
  for examples in splits.values():
    for text, label in examples:
      assert stack_evaluate(text) == label
      tokens = text.split()
      assert len(tokens) <= listops.MAX_LENGTH
      depth, most = depth_and_args(text)
      assert 1 <= depth <= listops.MAX_DEPTH and 2 <= most <= listops.MAX_ARGS
      assert tokens[0] in listops.OPERATORS             # root is an operator
  labels = np.bincount([l for _, l in splits["train"]], minlength=10)
  assert labels.min() > 150                             # every value occurs
  ops = {t for text in texts for t in text.split() if t.startswith("[")}
  assert ops == set(listops.OPERATORS)
  again = listops.generate_splits({"train": 3000, "validation": 300, "test": 300})
  assert again == splits                                # fixed seeds


def test_gold_binary_and_syntax_trees():
  tokens = "[MAX 2 9 [MIN 4 7 ] 0 ]".split()
  children = listops.gold_tree(tokens)
  # ( ( ( ( [MAX 2 ) 9 ) ( ( ( [MIN 4 ) 7 ) ] ) ) 0 ) ] )
  assert children[len(tokens):] == [[0, 1], [9, 2], [3, 4], [11, 5], [12, 6],
                                    [10, 13], [14, 7], [15, 8]]
  root, levels = tree_lib.check_tree(children, arity=2)
  assert root == len(children) - 1
  labels, kids = listops.syntax_tree(tokens)
  assert labels == ["[MAX", "2", "9", "[MIN", "4", "7", "0"]
  assert kids == [[1, 2, 3, 6], [], [], [4, 5], [], [], []]
  for bad in (["[MAX", "2"], ["]"], ["2", "3"], ["[MAX", "x", "]"]):
    with pytest.raises(ValueError, match="tokens:"):
      listops.gold_tree(bad)
    with pytest.raises(ValueError, match="tokens:"):
      listops.syntax_tree(bad)


def test_trees_compute_the_value_with_an_exact_composition():
  """Evaluating the gold trees bottom-up with the true operators gives the
  labels (the trees carry all the information the models need)."""
  splits = listops.generate_splits({"train": 200, "validation": 0, "test": 0})
  for text, label in splits["train"]:
    labels, kids = listops.syntax_tree(text.split())

    def value(j):
      if not kids[j]:
        return int(labels[j])
      return listops.apply_operator(labels[j], [value(c) for c in kids[j]])
    assert value(0) == label


class TinyListops(listops.Listops):
  """Tiny ListOps for tests."""
  SIZES = {"train": 40, "validation": 10, "test": 12}


def test_builder_round_trip_and_rebuild(tmp_path):
  expected = listops.generate_splits(TinyListops.SIZES)
  for split in ("train", "validation", "test"):
    got = listops.read_split(split, data_dir=str(tmp_path), builder_cls=TinyListops)
    assert got == expected[split]
  files = glob.glob(str(tmp_path / "tiny_listops" / "1.0.0" / "*.array_record*"))
  assert len(files) == 3
  # A damaged file is rebuilt.
  victim = [f for f in files if "train" in f][0]
  data = bytearray(open(victim, "rb").read())
  open(victim, "wb").write(bytes(data[:len(data) // 2]))
  assert listops.read_split("train", data_dir=str(tmp_path),
                            builder_cls=TinyListops) == expected["train"]
  with pytest.raises(ValueError, match="split: expected one of"):
    listops.read_split("valid", data_dir=str(tmp_path), builder_cls=TinyListops)


@pytest.fixture(scope="module")
def tiny_data_dir(tmp_path_factory):
  """A data dir holding the full-size builder's directory, made from tiny
  splits (the task reads the 'listops' name)."""
  path = tmp_path_factory.mktemp("listops_data")

  class Small(listops.Listops):
    SIZES = {"train": 256, "validation": 64, "test": 64}
  Small.name = "listops"
  for split in ("train", "validation", "test"):
    listops.read_split(split, data_dir=str(path), builder_cls=Small)
  return str(path)


@pytest.mark.parametrize("model", ["lstm", "tree_lstm", "child_sum"])
def test_smoke_train_and_evaluate(model, tiny_data_dir, tmp_path):
  config = listops_config.get_config(model)
  config.data_dir = tiny_data_dir
  config.hidden_size = config.embed_size = 16
  config.batch_size = 32
  config.max_train_size = 32      # one training batch shape: one compile
  config.num_train_steps = 6
  config.eval_every_steps = 6
  config.log_every_steps = 3
  config.warmup_steps = 0
  config.eval_batch_size = 64
  config.progress_bar = False
  summary = train.train_and_evaluate(config, str(tmp_path / model))
  assert summary["step"] == 6
  assert summary["metrics"]["test"]["examples"] == 64
  assert 0.0 <= summary["metrics"]["valid"]["accuracy"] <= 1.0
  lines = [json.loads(l) for l in open(tmp_path / model / "metrics.jsonl")]
  assert {l["split"] for l in lines} == {"train", "valid", "test"}
  assert os.path.isdir(tmp_path / model / "checkpoints" / "6")


def test_bad_model_and_tree_form_are_clear_errors(tiny_data_dir):
  config = listops_config.get_config("tree_lstm")
  config.data_dir = tiny_data_dir
  with config.unlocked():
    config.model = "gru_tree"
  with pytest.raises(ValueError, match="model: expected one of"):
    listops_task.build(config)
  config = listops_config.get_config("tree_lstm")
  config.data_dir = tiny_data_dir
  config.tree_form = "syntax"
  with pytest.raises(ValueError, match="tree_form: 'syntax' trees"):
    listops_task.build(config)


def test_accuracy_by_root_operator_in_every_batch_form():
  examples = [("[SM 3 [MAX 1 2 ] ]", 5), ("[MAX 4 7 ]", 7), ("[MIN 9 [SM 8 8 ] ]", 6),
              ("[SM 1 1 ]", 2), ("[MED 1 2 3 ]", 2)]
  labels = [y for _, y in examples]
  logits = np.full((len(examples), 10), -5.0, np.float32)
  guesses = [5, 0, 6, 1, 2]          # right, wrong, right, wrong, right
  logits[np.arange(len(examples)), guesses] = 5.0
  expected = {"SM": 0.5, "MAX": 0.0, "MIN": 1.0, "MED": 1.0}  # counted by hand
  batches = {"sequence": listops_task.sequence_batch(examples)}
  for form in ("binary", "syntax"):
    trees = [listops_task.prepare(t, i, form) for i, (t, _) in enumerate(examples)]
    batches[form] = listops_task.tree_batch(trees, labels)
  for form, batch in batches.items():
    ops = [listops_task.OPERATOR_NAMES[int(t)]
           for t in np.asarray(listops_task.root_operator(batch))]
    assert ops == ["SM", "MAX", "MIN", "SM", "MED"], form
    _, sums = listops_task.loss(logits, batch)
    metrics = listops_task.summarize({k: float(v) for k, v in sums.items()})
    assert metrics["accuracy"] == pytest.approx(3 / 5), form
    for name, value in expected.items():
      assert metrics[f"accuracy_{name}"] == pytest.approx(value), (form, name)
