"""Recursive networks: batched level loop == Python recursion (values and
gradients), the Flax encoder, greedy parsing and bracket F1."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import compositions
from models import recursive
from models import trees as tree_lib
from models import tree_parser
from tests.test_trees import random_tree


def _params_inputs(name, trees, seed=0, hidden=5, features=3):
  comp = compositions.get_composition(name)
  params = comp.init(jax.random.PRNGKey(seed), features, hidden, comp.arity)
  # Non-zero biases so that every term is exercised.
  params = jax.tree_util.tree_map(
      lambda p: p + 0.1 * jax.random.normal(jax.random.PRNGKey(seed + 1), p.shape),
      params)
  batch = tree_lib.batch_trees(trees, arity=comp.arity)
  inputs = jax.random.normal(jax.random.PRNGKey(seed + 2),
                             (batch.tokens.shape[0], features))
  return comp, params, batch, inputs


def _mixed_trees(arity, seed=0):
  rng = np.random.default_rng(seed)
  sizes = [1, 2, 4, 7, 3]
  return [random_tree(rng, n, arity=arity) for n in sizes]


@pytest.mark.parametrize("name, pack", [("rnn", False), ("tree_lstm", False),
                                        ("child_sum", False), ("tree_lstm", True)])
def test_batched_equals_recursion_values_and_gradients(name, pack):
  arity = 2 if name != "child_sum" else None
  trees = _mixed_trees(arity, seed=len(name))
  comp, params, _, _ = _params_inputs(name, trees)
  batch = tree_lib.batch_trees(trees, arity=comp.arity, pack=pack)
  inputs = jax.random.normal(jax.random.PRNGKey(7), (batch.tokens.shape[0], 3))
  weights = jax.random.normal(jax.random.PRNGKey(8), (batch.tokens.shape[0], 5))

  def batched(params, inputs):
    states = recursive.evaluate(comp, params, inputs, batch)
    real = (batch.levels >= 0)[:, None]
    return jnp.sum(jnp.where(real, states.h * weights + 0.5 * states.c * weights, 0.0))

  def recursion(params, inputs):
    total = 0.0
    for b, tree in enumerate(trees):
      slots = batch.slots[b, :len(tree.tokens)]
      states = recursive.evaluate_recursively(comp, params, inputs[slots], tree)
      total += jnp.sum(states.h * weights[slots] + 0.5 * states.c * weights[slots])
    return total

  # Per-node values, every tree.
  states = recursive.node_states(recursive.evaluate(comp, params, inputs, batch), batch)
  for b, tree in enumerate(trees):
    slots = batch.slots[b, :len(tree.tokens)]
    ref = recursive.evaluate_recursively(comp, params, inputs[slots], tree)
    np.testing.assert_allclose(states.h[b, :len(tree.tokens)], ref.h, atol=1e-5)
    np.testing.assert_allclose(states.c[b, :len(tree.tokens)], ref.c, atol=1e-5)
  roots = recursive.root_states(recursive.evaluate(comp, params, inputs, batch), batch)
  for b, tree in enumerate(trees):
    root, _ = tree_lib.check_tree(tree.children)
    ref = recursive.evaluate_recursively(
        comp, params, inputs[batch.slots[b, :len(tree.tokens)]], tree)
    np.testing.assert_allclose(roots.h[b], ref.h[root], atol=1e-5)
  # Gradients w.r.t. params and inputs, through the custom VJP.
  g_batched = jax.jit(jax.grad(batched, argnums=(0, 1)))(params, inputs)
  g_ref = jax.jit(jax.grad(recursion, argnums=(0, 1)))(params, inputs)
  for got, want in zip(jax.tree_util.tree_leaves(g_batched),
                       jax.tree_util.tree_leaves(g_ref)):
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_encoder_module_matches_recursion_with_token_inputs():
  trees = _mixed_trees(2, seed=3)
  model = recursive.TreeClassifier(
      recursive.TreeEncoder("tree_lstm", hidden_size=6, vocab_size=8, embed_size=4),
      num_outputs=3)
  batch = tree_lib.batch_trees(trees, arity=2)
  variables = model.init(jax.random.PRNGKey(0), batch)
  logits = model.apply(variables, batch)
  params = variables["params"]
  comp = compositions.nary_tree_lstm(2)
  table = params["encoder"]["embed"]["embedding"]
  for b, tree in enumerate(trees):
    x = jnp.stack([table[t] if t >= 0 else jnp.zeros(4) for t in tree.tokens])
    ref = recursive.evaluate_recursively(comp, params["encoder"]["composition"], x, tree)
    root, _ = tree_lib.check_tree(tree.children)
    head = params["head"]
    np.testing.assert_allclose(logits[b], ref.h[root] @ head["kernel"] + head["bias"],
                               atol=1e-5)


# ----------------------------------------------------------------------------
# Learning structure: greedy parsing, loss-augmented decoding, bracket F1.

def test_bracket_counts_and_scores_on_hand_made_trees():
  # Leaves 0..3; gold ((0 1) (2 3)), predicted (((0 1) 2) 3).
  gold = tree_parser.spans([[], [], [], [], [0, 1], [2, 3], [4, 5]], 4)
  pred = tree_parser.spans([[], [], [], [], [0, 1], [4, 2], [5, 3]], 4)
  assert sorted(gold) == [(0, 2), (0, 4), (2, 4)]
  assert sorted(pred) == [(0, 2), (0, 3), (0, 4)]
  matched, n_pred, n_gold = tree_parser.bracket_counts(set(pred), set(gold), 4)
  assert (matched, n_pred, n_gold) == (1, 2, 2)   # whole sentence not counted
  scores = tree_parser.bracket_scores(1, 2, 4)
  assert scores["precision"] == 0.5 and scores["recall"] == 0.25
  assert abs(scores["f1"] - 1 / 3) < 1e-9
  assert tree_parser.bracket_scores(0, 0, 0)["f1"] == 1.0
  with pytest.raises(ValueError, match="not adjacent"):
    tree_parser.spans([[], [], [], [0, 2], [3, 1]], 3)


@functools.lru_cache(maxsize=None)
def _parser_params(hidden, embed, seed):
  model = tree_parser.GreedyParser(hidden_size=hidden, vocab_size=6, embed_size=embed)
  tokens = jnp.asarray([[1, 2, 3, 4, 5], [2, 3, 1, 0, 0], [4, 0, 0, 0, 0]])
  lengths = jnp.asarray([5, 3, 1])
  # NumPy draws into the init's shapes: compiling model.init (the merge scan
  # and the PRNG) takes seconds on a shared CPU.
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(seed), tokens, lengths)
  rng = np.random.default_rng(seed)
  draw = lambda x: jnp.asarray(rng.normal(size=x.shape) / np.sqrt(
      x.shape[0] if x.ndim == 2 and x.shape[0] > 6 else 1 if x.ndim == 2 else 4 * x.size),
      jnp.float32)
  return jax.tree_util.tree_map(draw, shapes["params"])


def _parser(hidden=4, objective="global_margin", embed=3, seed=0):
  model = tree_parser.GreedyParser(hidden_size=hidden, vocab_size=6, embed_size=embed,
                                   objective=objective)
  tokens = jnp.asarray([[1, 2, 3, 4, 5], [2, 3, 1, 0, 0], [4, 0, 0, 0, 0]])
  lengths = jnp.asarray([5, 3, 1])
  return model, _parser_params(hidden, embed, seed), tokens, lengths


def _leaves(params, tokens):
  x = params["embed"]["embedding"][tokens]
  return jnp.tanh(x @ params["composition"]["w_x"] + params["composition"]["b"][None, None])


# Gold trees over the `_parser` batch (lengths 5, 3, 1): ((0 1) ((2 3) 4)),
# (0 (1 2)) and a single token; leaves first, internal nodes in merge order.
_GOLD_CHILDREN = [[[], [], [], [], [], [0, 1], [2, 3], [6, 4], [5, 7]],
                  [[], [], [], [1, 2], [0, 3]], [[]]]


def _gold_table(lengths, t=5):
  spans = [tree_parser.spans(c, int(n)) for c, n in zip(_GOLD_CHILDREN, lengths)]
  return spans, jnp.asarray(tree_parser.gold_span_table(spans, t))


def _python_greedy(params, leaves, n, gold=None, margin=0.0):
  p = {k: np.asarray(v, np.float64) for k, v in params["composition"].items()}
  u = np.asarray(params["score"], np.float64)
  nodes = [(np.asarray(leaves[i], np.float64), (i, i + 1)) for i in range(n)]
  merged = []
  while len(nodes) > 1:
    best = None
    for j in range(len(nodes) - 1):
      h = np.tanh(np.concatenate([nodes[j][0], nodes[j + 1][0]]) @ p["w_c"] + p["b"])
      span = (nodes[j][1][0], nodes[j + 1][1][1])
      score = float(h @ u) + (margin if gold is not None and span not in gold else 0.0)
      if best is None or score > best[0]:
        best = (score, j, h, span)
    _, j, h, span = best
    nodes[j:j + 2] = [(h, span)]
    merged.append(span)
  return merged


def test_greedy_parse_matches_python_greedy_and_augmentation():
  _, params, tokens, lengths = _parser()
  gold = [[(0, 2), (2, 4), (2, 5), (0, 5)], [(1, 3), (0, 3)], []]
  table = jnp.asarray(tree_parser.gold_span_table(gold, 5))

  @jax.jit
  def run(params):
    leaves = _leaves(params, tokens)
    args = (params["composition"], params["score"], leaves, lengths)
    return leaves, tree_parser.greedy_parse(*args), tree_parser.greedy_parse(
        *args, gold_spans=table, margin=100.0)

  # NumPy copies: eager JAX indexing would compile one program per index.
  leaves, parse, augmented = jax.device_get(run(params))
  for b in range(3):
    n = int(lengths[b])
    got = [tuple(map(int, parse.spans[b, k])) for k in range(n - 1)]
    assert got == _python_greedy(params, leaves[b], n)
    assert not np.any(parse.active[b, n - 1:])
    # Loss-augmented decoding: + margin on every non-gold span (so a huge
    # margin steers away from gold spans wherever it can).
    got = [tuple(map(int, augmented.spans[b, k])) for k in range(n - 1)]
    assert len(set(got[:-1]) & set(gold[b])) == 0
    assert got == _python_greedy(params, leaves[b], n, set(gold[b]), 100.0)


def _python_all_merge_sequences(params, leaves, n):
  """Every merge sequence over n leaves -> list of (log_prob total, sum
  total, spans in merge order), by exhaustive recursion in NumPy."""
  p = {k: np.asarray(v, np.float64) for k, v in params["composition"].items()}
  u = np.asarray(params["score"], np.float64)
  out = []

  def expand(nodes, log_prob, total, spans):
    if len(nodes) == 1:
      out.append((log_prob, total, spans))
      return
    composed = [np.tanh(np.concatenate([nodes[j][0], nodes[j + 1][0]]) @ p["w_c"] + p["b"])
                for j in range(len(nodes) - 1)]
    scores = np.asarray([h @ u for h in composed])
    log_z = np.log(np.sum(np.exp(scores - scores.max()))) + scores.max()
    for j, h in enumerate(composed):
      span = (nodes[j][1][0], nodes[j + 1][1][1])
      expand(nodes[:j] + [(h, span)] + nodes[j + 2:], log_prob + scores[j] - log_z,
             total + scores[j], spans + [span])

  expand([(np.asarray(leaves[i], np.float64), (i, i + 1)) for i in range(n)], 0.0, 0.0, [])
  return out


@pytest.mark.parametrize("score", ["log_prob", "sum"])
def test_beam_parse_is_exhaustive_with_a_wide_beam_and_greedy_with_one(score):
  _, params, tokens, lengths = _parser()
  width = 24                                     # (5 - 1)! merge sequences

  @jax.jit
  def run(params):
    leaves = _leaves(params, tokens)
    args = (params["composition"], params["score"], leaves, lengths)
    return (leaves, tree_parser.greedy_parse(*args),
            tree_parser.beam_parse(*args, beam_size=1, score=score),
            tree_parser.beam_parse(*args, beam_size=width, score=score))

  leaves, greedy, (one, _), (best, totals) = jax.device_get(run(params))
  column = 0 if score == "log_prob" else 1
  for b in range(3):
    n = int(lengths[b])
    np.testing.assert_array_equal(one.active[b], greedy.active[b])
    np.testing.assert_array_equal(one.spans[b][:n - 1], greedy.spans[b][:n - 1])
    np.testing.assert_array_equal(best.active[b], np.arange(4) < n - 1)
    every = _python_all_merge_sequences(params, leaves[b], n)
    # The beam holds every sequence, best first, with the exhaustive totals.
    want = sorted((e[column] for e in every), reverse=True)
    np.testing.assert_allclose(totals[b][:len(want)], want, rtol=1e-5, atol=1e-5)
    assert np.all(np.isneginf(totals[b][len(want):]))
    # Its best parse is a best sequence, and its merge scores are u . p.
    spans = [tuple(map(int, best.spans[b, k])) for k in range(n - 1)]
    top = [e for e in every if abs(e[column] - want[0]) < 1e-5]
    assert spans in [e[2] for e in top]
    if score == "sum" and n > 1:
      np.testing.assert_allclose(np.sum(best.scores[b]), want[0], rtol=1e-5)


def test_beam_settings_must_be_valid():
  model, params, tokens, lengths = _parser(objective="local_xent")
  for bad in (0, 2.5):
    with pytest.raises(ValueError, match="beam_size: expected an int >= 1"):
      model.clone(beam_size=bad).apply({"params": params}, tokens, lengths)
  with pytest.raises(ValueError, match="beam_score: expected one of .*'bogus'"):
    model.clone(beam_size=2, beam_score="bogus").apply({"params": params}, tokens, lengths)
  assert model.beam_score_kind == "log_prob"
  assert model.clone(objective="global_margin").beam_score_kind == "sum"


def test_max_margin_terms_match_python_scores():
  model, params, tokens, lengths = _parser()
  merges = [tree_parser.merge_order(c, int(n), 5)
            for c, n in zip(_GOLD_CHILDREN, lengths)]
  gold = (jnp.asarray(np.stack([m for m, _ in merges])),
          jnp.asarray(np.stack([a for _, a in merges])))
  spans, table = _gold_table(lengths)

  @jax.jit
  def run(params):
    """-> (the module's outputs, leaves), the hinge's gradient."""
    def hinge(params):
      o = model.apply({"params": params}, tokens, lengths, gold, table, augment=True)
      return jnp.sum(o["loss"]), (o, _leaves(params, tokens))
    return jax.grad(hinge, has_aux=True)(params)[::-1]

  (out, leaves), grads = jax.device_get(run(params))
  p = jax.device_get(params["composition"])
  u = np.asarray(params["score"])
  for b in range(3):
    n = int(lengths[b])
    # Gold score by recursion over the gold tree.
    h = {}
    def node(j, b=b):
      if j < n:
        return leaves[b, j]
      if j not in h:
        left, right = _GOLD_CHILDREN[b][j]
        h[j] = np.tanh(np.concatenate([node(left), node(right)]) @ p["w_c"] + p["b"])
      return h[j]
    want = sum(float(node(j) @ u) for j in range(n, len(_GOLD_CHILDREN[b])))
    np.testing.assert_allclose(out["gold_score"][b], want, atol=1e-5)
    # Predicted (augmented) tree: its merge scores sum to pred_score.
    merged = _python_greedy(params, leaves[b], n, set(spans[b]), model.margin)
    wrong = sum(1 for s in merged if s not in set(spans[b]))
    np.testing.assert_allclose(out["delta"][b], model.margin * wrong)
    got = float(np.sum(np.where(out["parse"].active[b], out["parse"].scores[b], 0.0)))
    np.testing.assert_allclose(out["pred_score"][b], got, atol=1e-5)
  np.testing.assert_allclose(
      out["loss"], np.maximum(0, out["pred_score"] + out["delta"] - out["gold_score"]))
  np.testing.assert_array_equal(out["loss_count"], 1.0)
  # The hinge's gradient reaches the params.
  assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))


def test_dependency_trees_binarize_to_gold_brackets():
  from corpora import ud  # pylint: disable=g-import-not-at-top
  # "a b c d": b heads a and c, c heads d, b is the root.
  children = ud.binarize([2, 0, 2, 3])
  n = 4
  assert sorted(tree_parser.spans(children, n)) == [(0, 4), (1, 4), (2, 4)]
  merges, active = tree_parser.merge_order(children, n, 8)
  assert active.sum() == 3 and merges.shape == (7, 2)
  assert ud.binarize([3, 4, 0, 3]) is None          # crossing arcs
  assert ud.binarize([0, 0]) is None                # two roots
  conllu = ("# text = a b\n1\ta\ta\tNOUN\t_\t_\t2\tnsubj\t_\t_\n"
            "2-3\tbc\t_\t_\t_\t_\t_\t_\t_\t_\n"
            "2\tb\tb\tVERB\t_\t_\t0\troot\t_\t_\n\n")
  sentence, = ud.parse_conllu(conllu)
  assert sentence.upos == ["NOUN", "VERB"] and sentence.heads == [2, 0]


def test_parse_task_counts_brackets_like_the_host_scorer():
  from tasks import parse as parse_task  # pylint: disable=g-import-not-at-top
  # Sentence 0: 4 tokens, gold ((0 1) (2 3)), predicted (((0 1) 2) 3).
  # Sentence 1: 3 tokens, gold (0 (1 2)), predicted the same.
  t = 4
  gold = [[(0, 2), (2, 4), (0, 4)], [(1, 3), (0, 3)]]
  spans = jnp.asarray([[[0, 2], [0, 3], [0, 4]], [[1, 3], [0, 3], [0, 0]]])
  parse = tree_parser.Parse(children=jnp.zeros((2, 3, 2), jnp.int32), spans=spans,
                            active=jnp.asarray([[True] * 3, [True, True, False]]),
                            scores=jnp.zeros((2, 3)))
  outputs = {"parse": parse, "loss": jnp.asarray([1.5, 0.5]),
             "loss_count": jnp.asarray([3.0, 2.0])}
  batch = {"lengths": jnp.asarray([4, 3]),
           "gold_spans": jnp.asarray(tree_parser.gold_span_table(gold, t))}
  mean, sums = jax.jit(parse_task.loss)(outputs, batch)   # jit: one compile
  assert abs(float(mean) - 0.4) < 1e-7          # (1.5 + 0.5) / (3 + 2) steps
  metrics = parse_task.summarize(jax.device_get(sums))
  # Counted spans (no whole sentence): sentence 0 pred {(0,2),(0,3)}, gold
  # {(0,2),(2,4)}; sentence 1 pred {(1,3)}, gold {(1,3)}: 2 of 3 match.
  assert metrics["precision"] == metrics["recall"] == 2 / 3
  assert metrics["exact"] == 0.5 and metrics["sentences"] == 2
  # Left-branching hits (0,2) of sentence 0; right-branching (2,4) and (1,3).
  assert metrics["left_branching_f1"] == 1 / 3
  assert metrics["right_branching_f1"] == 2 / 3


def _python_local(params, leaves, n, gold, margin, gold_pairs):
  """Python loop (NumPy) over the merges of the teacher-forced parse ->
  (sum of hinges, sum of xents, merged spans, per-step best correct score
  minus best wrong score, at steps that have a wrong pair)."""
  p = {k: np.asarray(v, np.float64) for k, v in params["composition"].items()}
  u = np.asarray(params["score"], np.float64)
  nodes = [(np.asarray(leaves[i], np.float64), (i, i + 1)) for i in range(n)]
  lse = lambda s: np.log(np.sum(np.exp(s)))
  hinge, xent, merged, gaps = 0.0, 0.0, [], []
  while len(nodes) > 1:
    cands = []
    for j in range(len(nodes) - 1):
      h = np.tanh(np.concatenate([nodes[j][0], nodes[j + 1][0]]) @ p["w_c"] + p["b"])
      cands.append((float(h @ u), h, (nodes[j][1][0], nodes[j + 1][1][1]), j))
    golds = [c for c in cands if c[2] in gold]
    pick = max(golds, key=lambda c: c[0]) if gold_pairs == "all" else golds[0]
    correct = golds if gold_pairs == "all" else [pick]
    wrong = [c for c in cands if all(c[3] != r[3] for r in correct)]
    best = max(c[0] for c in correct)
    if wrong:
      rival = max(c[0] for c in wrong)
      hinge += max(0.0, margin + rival - best)
      gaps.append(best - rival)
    xent += lse([c[0] for c in cands]) - lse([c[0] for c in correct])
    _, h, span, j = pick
    nodes[j:j + 2] = [(h, span)]
    merged.append(span)
  return hinge, xent, merged, gaps


@pytest.mark.parametrize("gold_pairs", ["all", "leftmost"])
def test_teacher_forced_parse_follows_gold_and_local_losses_match_python(gold_pairs):
  model, params, tokens, lengths = _parser(objective="local_margin")
  spans, table = _gold_table(lengths)

  @jax.jit
  def run(params, margin, xent_weight):
    """-> (sum of hinges + xent_weight * sum of xents, (leaves, parse,
    terms)), and its gradient with 'all' (one compiled program for every
    check below)."""
    def loss(params):
      leaves = _leaves(params, tokens)
      parse, terms = tree_parser.teacher_forced_parse(
          params["composition"], params["score"], leaves, lengths, table,
          margin=margin, gold_pairs=gold_pairs)
      total = xent_weight * jnp.sum(terms.xent) + jnp.sum(terms.hinge)
      return total, (leaves, parse, terms)
    if gold_pairs != "all":
      return loss(params), None
    return jax.value_and_grad(loss, has_aux=True)(params)

  for margin in (0.0, 1.0, 100.0):
    # NumPy copies: eager JAX indexing would compile one program per index.
    (_, (leaves, parse, terms)), _ = jax.device_get(run(params, margin, 1.0))
    for b in range(3):
      n = int(lengths[b])
      hinge, xent, merged, gaps = _python_local(params, leaves[b], n, set(spans[b]),
                                                margin, gold_pairs)
      got = [tuple(map(int, parse.spans[b, k])) for k in range(n - 1)]
      assert got == merged                        # the same merges, in order
      assert sorted(got) == sorted(spans[b])      # ... which build the gold tree
      assert not np.any(parse.active[b, n - 1:])
      np.testing.assert_allclose(np.sum(terms.hinge[b]), hinge, atol=1e-5)
      np.testing.assert_allclose(np.sum(terms.xent[b]), xent, atol=1e-5)
      # Zero iff the correct pairs win by the margin at every step.
      assert (np.sum(terms.hinge[b]) == 0.0) == all(g >= margin for g in gaps)
      if margin == 100.0:                         # every step with a rival pays
        assert np.sum(terms.hinge[b] > 0) == len(gaps)
  if gold_pairs != "all":
    return

  # Gradients flow through the composed frontier across steps: the
  # gradient's directional derivative matches finite differences.
  rng = np.random.default_rng(0)
  flat, tree = jax.tree_util.tree_flatten(jax.device_get(params))
  direction = [rng.normal(size=x.shape).astype(np.float32) for x in flat]
  unflat = lambda xs: jax.tree_util.tree_unflatten(tree, xs)
  loss = lambda xs: float(run(unflat(xs), 1.0, 1.0)[0][0])
  eps = 1e-3
  numeric = (loss([x + eps * d for x, d in zip(flat, direction)])
             - loss([x - eps * d for x, d in zip(flat, direction)])) / (2 * eps)
  grads = jax.tree_util.tree_leaves(jax.device_get(run(params, 1.0, 1.0)[1]))
  analytic = sum(float(np.sum(g * d)) for g, d in zip(grads, direction))
  np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=2e-3)

  # Overfit the hinge (Adam on the host, same program): it reaches 0, and
  # the module's plain greedy decoding then finds every gold tree.
  xs, m, v = list(flat), [0 * x for x in flat], [0 * x for x in flat]
  for step in range(1, 301):
    (value, _), grads = jax.device_get(run(unflat(xs), 1.0, 0.0))
    if value == 0.0:
      break
    for i, g in enumerate(jax.tree_util.tree_leaves(grads)):
      m[i] = 0.9 * m[i] + 0.1 * g
      v[i] = 0.999 * v[i] + 0.001 * g * g
      xs[i] = xs[i] - 0.05 * (m[i] / (1 - 0.9 ** step)) / (
          np.sqrt(v[i] / (1 - 0.999 ** step)) + 1e-8)
  assert value == 0.0
  out = jax.device_get(jax.jit(lambda p: model.apply(
      {"params": p}, tokens, lengths))(unflat(xs)))
  for b in range(3):                              # greedy, not teacher-forced
    n = int(lengths[b])
    assert sorted(tuple(map(int, out["parse"].spans[b, k])) for k in range(n - 1)) \
        == sorted(spans[b])


def test_parser_objective_must_be_known():
  _, params, tokens, lengths = _parser()
  for key, message in (("objective", r"objective: expected one of .*'bogus'"),
                       ("gold_pairs", r"gold_pairs: expected one of .*'bogus'")):
    model = tree_parser.GreedyParser(hidden_size=4, vocab_size=6, embed_size=3,
                                     **{key: "bogus"})
    with pytest.raises(ValueError, match=message):
      jax.eval_shape(lambda p, m=model: m.apply({"params": p}, tokens, lengths), params)
  # The task checks the config before reading any data.
  from experiments.configs import parse as parse_config  # pylint: disable=g-import-not-at-top
  from tasks import parse as parse_task  # pylint: disable=g-import-not-at-top
  config = parse_config.get_config("listops")
  config.objective = "local"
  with pytest.raises(ValueError, match=r"objective: expected one of .*'local'"):
    parse_task.build(config)
