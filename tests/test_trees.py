"""Trees as arrays: malformed-tree errors, bucketing, layout and schedules."""

import numpy as np
import pytest

from models import trees as tree_lib


def random_tree(rng, num_leaves, arity=None, max_children=4):
  """A random tree over num_leaves leaves, nodes shuffled; binary merges of
  adjacent nodes when arity == 2, else 1..max_children children per node."""
  nodes = [[] for _ in range(num_leaves)]
  active = list(range(num_leaves))
  while len(active) > 1:
    width = 2 if arity == 2 else int(rng.integers(1, min(max_children, len(active)) + 1))
    if width == 1 and len(active) > 1 and rng.random() < 0.5:
      width = 2
    k = int(rng.integers(len(active) - width + 1))
    nodes.append(active[k:k + width])
    active[k:k + width] = [len(nodes) - 1]
  perm = rng.permutation(len(nodes))
  new_index = np.argsort(perm)
  children = [[int(new_index[c]) for c in nodes[perm[j]]] for j in range(len(nodes))]
  tokens = [int(rng.integers(-1, 7)) for _ in children]  # -1: no input
  return tree_lib.Tree(tokens, children)


# ----------------------------------------------------------------------------
# Malformed trees: clear errors naming the tree and the node.

GOOD = tree_lib.Tree([0, 1, -1], [[], [], [0, 1]])


@pytest.mark.parametrize("bad, message", [
    (tree_lib.Tree([0, 1, -1, -1], [[], [], [0, 3], [1, 2]]),
     r"tree 1: node \d is its own descendant \(cycle \d -> \d -> \d\)"),
    (tree_lib.Tree([0, 1, -1, -1], [[], [], [0, 1], [0, 2]]),
     r"tree 1: node 0 is a child of both node 2 and node 3"),
    (tree_lib.Tree([0, 1, 2, -1], [[], [], [], [0, 1]]),
     r"tree 1: 2 roots \(nodes \[2, 3\]"),
    (tree_lib.Tree([0, 1, -1], [[], [], [0, 5]]),
     r"tree 1: node 2 has child index 5, out of range \[0, 3\)"),
    (tree_lib.Tree([0, 1, -1], [[], [], [0, -1]]),
     r"tree 1: node 2 has child index -1, out of range"),
    (tree_lib.Tree([0, 1, 2, -1], [[], [], [], [0, 1, 2]]),
     r"tree 1: node 3 has 3 children, but the tree_lstm composition needs "
     r"exactly 2 \(or 0 for a leaf\)"),
    (tree_lib.Tree([0, -1], [[], [0]]),
     r"tree 1: node 1 has 1 children, but the tree_lstm composition needs exactly 2"),
    (tree_lib.Tree([0, -1], [[], [0, 1]]), r"tree 1: node 1 is its own child"),
    (tree_lib.Tree([0, 1], [[], [], []]), r"tree 1: 2 tokens but 3 child lists"),
    (tree_lib.Tree([], []), r"tree 1: has no nodes"),
])
def test_malformed_trees_name_the_tree_and_node(bad, message):
  with pytest.raises(tree_lib.MalformedTreeError, match=message):
    tree_lib.batch_trees([GOOD, bad], arity=2, composition="tree_lstm")


def test_cycle_error_shows_the_cycle():
  bad = tree_lib.Tree([0] * 5, [[], [2], [3], [1], [0]])  # 1 -> 2 -> 3 -> 1
  with pytest.raises(tree_lib.MalformedTreeError,
                     match=r"tree 0: node \d is its own descendant \(cycle "
                           r"\d -> \d -> \d -> \d\)"):
    tree_lib.batch_trees([bad])


def test_child_sum_accepts_any_arity_up_to_max_children():
  tree = tree_lib.Tree([0, 1, 2, -1], [[], [], [], [0, 1, 2]])
  batch = tree_lib.batch_trees([tree, GOOD])
  assert batch.children.shape == (8, 3)
  with pytest.raises(tree_lib.MalformedTreeError,
                     match=r"tree 0: node 3 has 3 children, more than the 2"):
    tree_lib.batch_trees([tree], max_children=2)


# ----------------------------------------------------------------------------
# Layout and bucketing.

def test_bucket_sizes():
  assert [tree_lib.bucket(n) for n in (1, 2, 3, 4, 5, 7, 9, 13, 100, 129)] == \
      [1, 2, 3, 4, 6, 8, 12, 16, 128, 192]
  assert tree_lib.bucket(3, minimum=8) == 8


def test_layout_levels_schedule_and_few_shapes():
  rng = np.random.default_rng(0)
  shapes = set()
  for _ in range(20):
    trees = [random_tree(rng, int(rng.integers(10, 30)), arity=2) for _ in range(16)]
    for pack in (False, True):
      batch = tree_lib.batch_trees(trees, arity=2, pack=pack)
      shapes.add((pack, batch.tokens.shape, batch.schedule.shape))
      # Every internal node exactly once, after all its children.
      step_of = {}
      for s, row in enumerate(batch.schedule):
        for slot in row[row < len(batch.tokens)]:
          assert slot not in step_of
          step_of[int(slot)] = s
      internal = np.flatnonzero(batch.levels > 0)
      assert sorted(step_of) == sorted(internal.tolist())
      for slot in internal:
        for child in batch.children[slot][batch.children[slot] >= 0]:
          assert batch.levels[child] < batch.levels[slot]
          assert step_of.get(int(child), -1) < step_of[int(slot)]
      if not pack:
        for slot, s in step_of.items():
          assert batch.levels[slot] == s + 1
  assert len(shapes) <= 12  # 40 batches of different trees, few programs


def test_sizes_below_need_are_errors():
  with pytest.raises(ValueError, match=r"num_slots: the batch needs at least 3, got 2"):
    tree_lib.batch_trees([GOOD], num_slots=2)
  with pytest.raises(ValueError, match=r"num_steps: the batch needs at least 1, got 0"):
    tree_lib.batch_trees([GOOD], num_steps=0)


def test_batch_dict_round_trip():
  rng = np.random.default_rng(1)
  batch = tree_lib.batch_trees([random_tree(rng, n, arity=2) for n in (3, 5)],
                               arity=2, pack=True)
  back = tree_lib.tree_batch_from_dict({**tree_lib.batch_dict(batch), "labels": 0})
  for got, want in zip(back, batch):
    np.testing.assert_array_equal(got, want)
