"""Learning tree structure (Socher et al. 2011): greedy merge parsing, trained
per step along the gold tree (or with the paper's global max-margin loss).

B = sentences, T = token slots (bucketed), H = hidden units. Node layout of
every tree here: leaves 0 .. T-1 are the tokens in order; merge k creates
node T + k, so a tree over n tokens has internal nodes T .. T + n - 2.

The net (a `models.compositions` 'rnn' composition plus a score vector u):
  leaf       h = tanh(U x + b)
  merge      p = tanh(W [c_1; c_2] + b),   score s(p) = u . p
  tree score s(y) = sum of s(p) over y's internal nodes
Greedy parsing (`greedy_parse`) repeatedly merges the adjacent pair with
the highest score until one node is left: n - 1 steps of a `lax.scan` for
the whole batch, each scoring only the two pairs its merge created (the
other pair scores are carried). With `gold_spans` and margin kappa it
decodes loss-augmented: every pair whose span is not a gold span gets
+kappa. Beam search (`beam_parse`, `GreedyParser.beam_size` > 1) keeps the
beam_size best merge sequences instead, scored by the sum of per-step log
softmax ('log_prob', the default for the local objectives) or of merge
scores ('sum', Socher et al.'s tree score, for 'global_margin').

Objectives (`GreedyParser.objective`, `OBJECTIVES`):

  'local_xent', 'local_margin' (per step, along the gold tree). The same
  merge scan runs teacher-forced (`teacher_forced_parse`): at every step the
  candidates are the adjacent pairs of the current frontier, and the
  correct ones are the gold pairs, those whose span is a gold span (on a
  frontier of gold constituents: two siblings of the gold tree). The step
  then merges a correct pair, so the scan ends with the gold tree, and it
  pays
    local_xent:   -log( sum_{correct} e^{s_i} / sum_{valid} e^{s_i} )
    local_margin: max(0, kappa + max_{wrong} s_i - max_{correct} s_i)
  (0 at steps without a wrong pair). The loss is the mean over merge steps.
  Gradients flow through the scores and through the composed node vectors
  carried on the frontier from step to step (no stop_gradient), so early
  compositions learn to serve later decisions.
  Which gold pairs count as correct (`gold_pairs`): any bottom-up order of
  the gold merges builds the gold tree, and greedy decoding recovers it iff
  at every step its best-scoring pair is a gold pair. So with 'all'
  (default) every currently mergeable gold pair is correct and the step
  merges the best-scoring one: the loss asks exactly for max over gold >
  max over the rest, and training visits the states greedy decoding visits
  while it is right. 'leftmost' fixes one order (the leftmost gold pair is
  the only correct one, other gold pairs count as wrong), which also makes
  the net learn an arbitrary order; it parses worse, so 'all' is the
  default.

  'global_margin' (Socher et al. 2011, eq. 6, without the L2 term; use
  weight decay for that), per sentence:
    max(0, s(y_hat) + Delta(y_hat, y) - s(y)),
    y_hat = the loss-augmented greedy tree, Delta = kappa * (number of y_hat's
    spans that are not spans of the gold tree y).
  Both tree scores are computed by `models.recursive.evaluate` with the
  trees' merge order as the schedule (gold trees given as merge sequences,
  `merge_order`). With greedy decoding this loss can reach 0 while greedy
  still misses the gold tree (s(y) beats the greedy tree's score, yet
  greedy never reaches y), so training stalls far from the gold trees.
  That is why the local objectives, which train exactly the decisions
  greedy decoding makes, are the default ('local_xent'), and
  'global_margin' stays for comparison with the paper.

The measurements behind these choices (bracket F1 per objective and
gold_pairs setting, on ListOps and UD Turkish) are in
docs/results/recursive.md.

`bracket_counts` gives unlabeled bracketing counts; precision, recall and F1
come from their corpus totals (`bracket_scores`). The whole-sentence span
(always right) and single tokens are not counted.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from models import compositions
from models import recursive
from models import trees as tree_lib
from models.checks import check_one_of


# ----------------------------------------------------------------------------
# Spans and bracketing scores (host side).

def spans(children: Sequence[Sequence[int]], num_leaves: int) -> list[tuple[int, int]]:
  """[(start, end)] (end exclusive) of every internal node of a tree whose
  nodes 0 .. num_leaves - 1 are its leaves in order; root included."""
  root, levels = tree_lib.check_tree(children)
  span = {j: (j, j + 1) for j in range(num_leaves)}
  for j in np.argsort(levels, kind="stable"):
    j = int(j)
    if j >= num_leaves or children[j]:
      if not children[j]:
        raise ValueError(f"children: node {j} >= num_leaves ({num_leaves}) has "
                         f"no children")
      parts = [span[c] for c in children[j]]
      for (_, end), (start, _) in zip(parts, parts[1:]):
        if end != start:
          raise ValueError(f"children: node {j}'s children are not adjacent "
                           f"spans ({parts})")
      span[j] = (parts[0][0], parts[-1][1])
  del root
  return [span[j] for j in range(len(children)) if children[j]]


def bracket_counts(predicted: set, gold: set, num_leaves: int) -> tuple[int, int, int]:
  """(matched, predicted, gold) spans, not counting the whole sentence or
  single tokens."""
  trivial = {(0, num_leaves)}
  pred = {s for s in predicted if s[1] - s[0] > 1} - trivial
  ref = {s for s in gold if s[1] - s[0] > 1} - trivial
  return len(pred & ref), len(pred), len(ref)


def bracket_scores(matched: float, predicted: float, gold: float) -> dict[str, float]:
  """Corpus-level unlabeled bracketing precision, recall and F1 (1.0 when
  there is nothing to bracket)."""
  precision = matched / predicted if predicted else 1.0
  recall = matched / gold if gold else 1.0
  f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
  return {"precision": precision, "recall": recall, "f1": f1}


def merge_order(children: Sequence[Sequence[int]], num_leaves: int,
                steps: int) -> tuple[np.ndarray, np.ndarray]:
  """A binary tree over leaves 0 .. n-1 whose internal node n + k is built
  from earlier nodes -> its merges in this module's numbering (merge k =
  node steps + k): (children [steps - 1, 2] int32, active [steps - 1] bool).
  Gold trees are scored as such merge sequences, so every batch of T
  tokens has the same shapes whatever its trees."""
  n = num_leaves
  internal = children[n:]
  if len(internal) != max(n - 1, 0) or any(len(c) != 2 for c in internal):
    raise ValueError(f"children: expected {max(n - 1, 0)} binary internal nodes "
                     f"after {n} leaves, got {[len(c) for c in internal]}")
  merges = np.zeros((max(steps - 1, 0), 2), np.int32)
  active = np.zeros(max(steps - 1, 0), bool)
  for k, pair in enumerate(internal):
    for side, c in enumerate(pair):
      if c >= n + k:
        raise ValueError(f"children: node {n + k} has child {c}, which is not "
                         f"built before it (nodes must come in merge order)")
      merges[k, side] = c if c < n else steps + (c - n)
    active[k] = True
  return merges, active


def gold_span_table(trees_spans: Sequence[Sequence[tuple[int, int]]],
                    steps: int) -> np.ndarray:
  """[B, T + 1, T + 1] bool: True at (start, end) of every gold span."""
  table = np.zeros((len(trees_spans), steps + 1, steps + 1), bool)
  for b, tree_spans in enumerate(trees_spans):
    for start, end in tree_spans:
      table[b, start, end] = True
  return table


# ----------------------------------------------------------------------------
# Greedy and teacher-forced parsing under jit.

OBJECTIVES = ("local_margin", "local_xent", "global_margin")
GOLD_PAIRS = ("all", "leftmost")
BEAM_SCORES = ("log_prob", "sum")
_NEG = -1e30   # stands for -inf in masked max / logsumexp (finite: no NaN grads)
_NET = compositions.recursive_net(2)   # the parser's composition


class Parse(NamedTuple):
  """children [B, T - 1, 2]: merge k's two nodes (node ids, see module doc);
  spans [B, T - 1, 2]: its (start, end); active [B, T - 1]: merge k is real
  (k < length - 1); scores [B, T - 1]: its score u . p."""
  children: jax.Array
  spans: jax.Array
  active: jax.Array
  scores: jax.Array


class LocalTerms(NamedTuple):
  """Per-step losses along the gold merge path, [B, T - 1] each (0 at
  inactive steps): hinge max(0, kappa + max wrong s - max correct s) (0 where
  no wrong pair is left), xent -log(sum_correct e^s / sum_valid e^s)."""
  hinge: jax.Array
  xent: jax.Array


class Frontier(NamedTuple):
  """The merge loop's state for N rows (sentences, or sentences x beam):
  h [N, T, H] the frontier's node vectors; pairs [N, T - 1, H] and scores
  [N, T - 1] its adjacent pairs' composed vectors and scores u . p; ids,
  starts, ends [N, T] its nodes' ids and spans."""
  h: jax.Array
  pairs: jax.Array
  scores: jax.Array
  ids: jax.Array
  starts: jax.Array
  ends: jax.Array


class Merge(NamedTuple):
  """One merge of every row: frontier (after it), children [N, 2] (the
  merged node ids), span [N, 2] and score [N] (u . p of the new node)."""
  frontier: Frontier
  children: jax.Array
  span: jax.Array
  score: jax.Array


def _compose(params, left, right):
  """left, right [..., H] -> p [..., H] (internal nodes have no input)."""
  shape = left.shape
  h = jnp.stack([left.reshape(-1, shape[-1]), right.reshape(-1, shape[-1])], 1)
  gx = jnp.broadcast_to(params["b"], (h.shape[0], params["b"].shape[0]))
  mask = jnp.ones(h.shape[:2], bool)
  p = _NET.combine(params, gx, compositions.NodeState(h, jnp.zeros_like(h)), mask).h
  return p.reshape(shape)


def _masked_max(x, mask):
  return jnp.max(jnp.where(mask, x, _NEG), axis=-1)


def _masked_logsumexp(x, mask):
  # In float32 at least (bfloat16 scores), cast back.
  wide = jnp.promote_types(x.dtype, jnp.float32)
  return jax.nn.logsumexp(jnp.where(mask, x, _NEG).astype(wide),
                          axis=-1).astype(x.dtype)


def _merge_at(params, score_vector, state: Frontier, j, new_id) -> Merge:
  """Merges pair j [N] of every row's frontier.

  Node j becomes the merged node (id new_id), nodes and pairs right of it
  shift left by one, and only the two pairs j - 1, j that now contain the
  new node are composed afresh."""
  h, p, s, ids, starts, ends = state
  n, t = ids.shape
  positions = jnp.arange(t)
  take = lambda x, i: x[jnp.arange(n), i]
  merged = take(p, j)                                                # [N, H]
  children = jnp.stack([take(ids, j), take(ids, j + 1)], -1)
  span = jnp.stack([take(starts, j), take(ends, j + 1)], -1)
  # Nodes: i < j keep, i == j merged, i > j shift left by one.
  src = jnp.minimum(positions[None, :] + (positions[None, :] > j[:, None]), t - 1)
  at_j = positions[None, :] == j[:, None]
  shift = lambda x: jnp.take_along_axis(x, src if x.ndim == 2 else src[..., None], 1)
  h2 = jnp.where(at_j[..., None], merged[:, None], shift(h))
  ids2 = jnp.where(at_j, new_id, shift(ids))
  starts2 = jnp.where(at_j, take(starts, j)[:, None], shift(starts))
  ends2 = jnp.where(at_j, take(ends, j + 1)[:, None], shift(ends))
  # Pairs: i < j-1 keep, j-1 and j recomputed, i > j shift left by one.
  psrc = jnp.minimum(positions[None, :-1] + (positions[None, :-1] > j[:, None]), t - 2)
  p2 = jnp.take_along_axis(p, psrc[..., None], 1)
  s2 = jnp.take_along_axis(s, psrc, 1)
  left_i, right_i = jnp.maximum(j - 1, 0), jnp.minimum(j + 1, t - 1)
  fresh = _compose(params,
                   jnp.stack([take(h2, left_i), take(h2, j)], 1),
                   jnp.stack([take(h2, j), take(h2, right_i)], 1))    # [N, 2, H]
  fresh_s = fresh @ score_vector
  for offset, col in ((-1, 0), (0, 1)):
    where = positions[None, :-1] == (j + offset)[:, None]
    p2 = jnp.where(where[..., None], fresh[:, col][:, None], p2)
    s2 = jnp.where(where, fresh_s[:, col][:, None], s2)
  return Merge(Frontier(h2, p2, s2, ids2, starts2, ends2), children, span,
               take(s, j))


def _keep_where(active, new, old):
  """Per row (leading axis): new where active [N] else old, over pytrees."""
  return jax.tree_util.tree_map(
      lambda a, b: jnp.where(active.reshape((-1,) + (1,) * (a.ndim - 1)), a, b),
      new, old)


def _initial_frontier(params, score_vector, leaves) -> Frontier:
  """leaves [N, T, H] -> the frontier before any merge."""
  n, t, _ = leaves.shape
  positions = jnp.broadcast_to(jnp.arange(t), (n, t))
  pairs = _compose(params, leaves[:, :-1], leaves[:, 1:])            # [N, T-1, H]
  return Frontier(leaves, pairs, pairs @ score_vector, positions, positions,
                  positions + 1)


def _empty_parse(b, dtype):
  empty = jnp.zeros((b, 0, 2), jnp.int32)
  return Parse(empty, empty, jnp.zeros((b, 0), bool), jnp.zeros((b, 0), dtype))


def _nodes_left(lengths, k, t):
  """Before merge k: (active [B], a merge is left to do; valid [B, T - 1],
  the adjacent pairs of the frontier)."""
  count = lengths - k                                                # nodes left
  valid = jnp.arange(t)[None, :-1] < (count - 1)[:, None]
  return count > 1, valid


def _greedy_choice(scores, valid, is_gold, margin):
  """-> j [B], the best valid pair; with is_gold [B, T - 1] (loss-augmented
  decoding) every pair that is not gold gets + margin."""
  if is_gold is not None:
    scores = scores + margin * (~is_gold).astype(scores.dtype)
  return jnp.argmax(jnp.where(valid, scores, -jnp.inf), axis=1)


def _teacher_choice(scores, valid, is_gold, active, margin, gold_pairs):
  """-> (j [B], the gold pair to merge; LocalTerms [B] of this step).

  gold_pairs='all': every gold pair is correct and the best-scoring one is
  merged; 'leftmost': the leftmost gold pair is the only correct one."""
  positions = jnp.arange(scores.shape[1])
  if gold_pairs == "all":
    j = jnp.argmax(jnp.where(is_gold, scores, _NEG), axis=1)
    correct = is_gold
  else:
    j = jnp.argmax(is_gold, axis=1)
    correct = positions[None, :] == j[:, None]
  wrong = valid & ~correct
  hinge = jax.nn.relu(margin + _masked_max(scores, wrong)
                      - _masked_max(scores, correct))
  hinge = jnp.where(active & jnp.any(wrong, 1), hinge, 0.0)
  xent = _masked_logsumexp(scores, valid) - _masked_logsumexp(scores, correct)
  return j, LocalTerms(hinge=hinge, xent=jnp.where(active, xent, 0.0))


def _merge_scan(params, score_vector, leaves, lengths, gold_spans, margin, *,
                teacher: bool, gold_pairs: str = "all"
                ) -> tuple[Parse, LocalTerms | None]:
  """The merge loop shared by `greedy_parse` and `teacher_forced_parse`:
  one `lax.scan` over the T - 1 merges of the whole batch -> (Parse,
  LocalTerms or None).

  The carry is the `Frontier`; merge k picks pair j, writes p_j over node j,
  shifts the nodes and pairs right of it left by one and composes only the
  two pairs j - 1, j that now contain the new node. All of it is
  differentiable in params, u and leaves (the choice j is an integer)."""
  b, t, _ = leaves.shape
  rows = jnp.arange(b)
  if t < 2:
    none = jnp.zeros((b, 0), leaves.dtype)
    return _empty_parse(b, leaves.dtype), LocalTerms(none, none) if teacher else None

  def merge(frontier: Frontier, k):
    active, valid = _nodes_left(lengths, k, t)
    is_gold = None
    if gold_spans is not None:
      is_gold = valid & gold_spans[rows[:, None], frontier.starts[:, :-1],
                                   frontier.ends[:, 1:]]
    terms = None
    if teacher:   # merge a gold pair; the loss asks them to beat the rest
      j, terms = _teacher_choice(frontier.scores, valid, is_gold, active,
                                 margin, gold_pairs)
    else:
      j = _greedy_choice(frontier.scores, valid, is_gold, margin)
    done = _merge_at(params, score_vector, frontier, j, t + k)
    step = Parse(done.children, done.span, active, done.score)
    return _keep_where(active, done.frontier, frontier), (step, terms)

  _, (steps, terms) = jax.lax.scan(
      merge, _initial_frontier(params, score_vector, leaves), jnp.arange(t - 1))
  swap = lambda x: jnp.swapaxes(x, 0, 1)                # [T-1, B] -> [B, T-1]
  parse = Parse(swap(steps.children).astype(jnp.int32),
                swap(steps.spans).astype(jnp.int32), swap(steps.active),
                swap(steps.scores))
  return parse, jax.tree_util.tree_map(swap, terms)


def greedy_parse(params, score_vector, leaves, lengths, *, gold_spans=None,
                 margin: float = 0.0) -> Parse:
  """Greedy bottom-up parsing of a batch, one `lax.scan` over merges.

  Args:
    params: the 'rnn' composition's params (arity 2).
    score_vector: u [H].
    leaves: [B, T, H] leaf vectors; lengths [B] tokens per sentence (>= 1).
    gold_spans: [B, T + 1, T + 1] bool, for loss-augmented decoding: pairs
      whose span is not gold get + margin.
  """
  parse, _ = _merge_scan(params, score_vector, leaves, lengths, gold_spans,
                         margin, teacher=False)
  return parse


def teacher_forced_parse(params, score_vector, leaves, lengths, gold_spans, *,
                         margin: float = 1.0, gold_pairs: str = "all"
                         ) -> tuple[Parse, LocalTerms]:
  """Runs the merge loop along the gold tree (one `lax.scan`) -> (the parse,
  which is the gold tree, and the per-step local losses).

  At every step the candidates are the adjacent pairs of the current
  frontier; a pair is gold iff its span is a gold span (`gold_spans` [B,
  T + 1, T + 1]; on a frontier of gold constituents that makes the two
  nodes siblings in the gold tree).
    gold_pairs='all': every gold pair is correct, and the step merges the
      best-scoring one -- the pair greedy decoding would take if it is
      right, so training visits the decoder's own states while it stays on
      the gold tree, and greedy recovers the tree iff max over gold pairs >
      max over the rest at every step.
    gold_pairs='leftmost': only the leftmost gold pair (a fixed bottom-up
      order) is correct; the other gold pairs count as wrong.
  Gradients flow through the scores and the composed frontier vectors
  across steps (no stop_gradient).
  """
  check_one_of("gold_pairs", gold_pairs, GOLD_PAIRS)
  return _merge_scan(params, score_vector, leaves, lengths, gold_spans, margin,
                     teacher=True, gold_pairs=gold_pairs)


# ----------------------------------------------------------------------------
# Beam search.

def _check_beam_size(beam_size) -> None:
  if not isinstance(beam_size, int) or beam_size < 1:
    raise ValueError(f"beam_size: expected an int >= 1, got {beam_size!r}")


class _History(NamedTuple):
  """Each hypothesis' merges so far: children, spans [B K, T - 1, 2] and
  scores [B K, T - 1] (zeros past the merges done)."""
  children: jax.Array
  spans: jax.Array
  scores: jax.Array


class _Beam(NamedTuple):
  """The beam loop's carry: frontier (rows B K), totals [B, K] (the
  hypotheses' summed scores, -inf in unfilled slots) and history."""
  frontier: Frontier
  totals: jax.Array
  history: _History


def beam_parse(params, score_vector, leaves, lengths, *, beam_size: int,
               score: str = "log_prob") -> tuple[Parse, jax.Array]:
  """Beam search over merge sequences, one `lax.scan` over the T - 1 merges
  for the whole batch x beam -> (the best hypothesis' Parse [B, ...],
  totals [B, beam_size], sorted best first).

  A hypothesis is a merge sequence; its total is the sum over its merges of
    score='log_prob': log softmax of the merged pair's score among the
                      frontier's adjacent pairs (the local objectives train
                      this per-step distribution);
    score='sum':      the merged node's score u . p, so the total is the tree
                      score s(y) of Socher et al. ('global_margin').
  Each step extends every hypothesis by every adjacent pair of its frontier
  and keeps the beam_size best (ties: lower beam, then leftmost pair, first).
  The beam starts from one hypothesis; slots not yet filled hold total
  -inf. Different merge orders of the same tree are different hypotheses,
  so the beam can hold one tree more than once, and with beam_size at least
  the number of merge sequences ((n - 1)! for n tokens) the search is
  exact. beam_size=1 is `greedy_parse` (both scores pick the top pair).
  """
  check_one_of("score", score, BEAM_SCORES)
  _check_beam_size(beam_size)
  b, t, _ = leaves.shape
  k_beam = beam_size
  # Totals sum over the merges in float32 at least (bfloat16 scores).
  totals = jnp.where(jnp.arange(k_beam) == 0, 0.0, -jnp.inf).astype(
      jnp.promote_types(leaves.dtype, jnp.float32))[None].repeat(b, 0)
  if t < 2:
    return _empty_parse(b, leaves.dtype), totals
  n = b * k_beam
  # Every beam slot starts as the same frontier; only slot 0 is live.
  start = _Beam(
      _initial_frontier(params, score_vector, jnp.repeat(leaves, k_beam, axis=0)),
      totals,
      _History(jnp.zeros((n, t - 1, 2), jnp.int32),
               jnp.zeros((n, t - 1, 2), jnp.int32),
               jnp.zeros((n, t - 1), leaves.dtype)))

  def step(beam: _Beam, k):
    s = beam.frontier.scores.reshape(b, k_beam, t - 1)
    active, valid = _nodes_left(lengths, k, t)                       # [B], [B, T-1]
    valid = valid[:, None]                                           # [B, 1, T-1]
    gain = s
    if score == "log_prob":
      gain = s - _masked_logsumexp(s, valid)[..., None]
    candidates = jnp.where(valid, beam.totals[..., None] + gain, -jnp.inf)
    best, index = jax.lax.top_k(candidates.reshape(b, -1), k_beam)  # [B, K]
    keep_slot = jnp.arange(k_beam)[None]
    parent = jnp.where(active[:, None], index // (t - 1), keep_slot)
    j = jnp.where(active[:, None], index % (t - 1), 0).reshape(-1)
    totals = jnp.where(active[:, None], best, beam.totals)
    rows = (jnp.arange(b)[:, None] * k_beam + parent).reshape(-1)    # [B*K]
    frontier, history = jax.tree_util.tree_map(
        lambda x: x[rows], (beam.frontier, beam.history))
    done = _merge_at(params, score_vector, frontier, j, t + k)
    active_rows = jnp.repeat(active, k_beam)
    extended = _History(*(old.at[:, k].set(new) for old, new in zip(
        history, (done.children, done.span, done.score))))
    return _Beam(_keep_where(active_rows, done.frontier, frontier), totals,
                 _keep_where(active_rows, extended, history)), None

  end, _ = jax.lax.scan(step, start, jnp.arange(t - 1))
  top = jnp.arange(b) * k_beam                                       # slot 0 is best
  children, span, scores = (x[top] for x in end.history)
  active = jnp.arange(t)[None, :-1] < (lengths - 1)[:, None]
  return Parse(children.astype(jnp.int32), span.astype(jnp.int32), active,
               jnp.where(active, scores, 0.0)), end.totals


# ----------------------------------------------------------------------------
# Tree scores: a parse evaluated as a TreeBatch.

def parse_to_trees(parse: Parse, tokens, lengths) -> tree_lib.TreeBatch:
  """A greedy parse as a TreeBatch, built under jit: tree b owns slots
  b * 2T .. b * 2T + 2T - 1 (leaves, then merges in order), and the schedule
  is the merge order (step k computes merge k of every tree)."""
  b, merges = parse.active.shape
  t = merges + 1
  n = 2 * t
  offsets = (jnp.arange(b, dtype=jnp.int32) * n)[:, None, None]
  children = jnp.full((b, n, 2), -1, jnp.int32)
  children = children.at[:, t:t + merges].set(
      jnp.where(parse.active[..., None], parse.children + offsets, -1))
  tokens = jnp.concatenate([tokens, jnp.full((b, t), -1, tokens.dtype)], 1)
  slots = offsets[:, :, 0] + jnp.arange(n, dtype=jnp.int32)[None, :]
  schedule = jnp.where(parse.active.T, slots[:, t:t + merges].T, b * n)
  roots = offsets[:, 0, 0] + jnp.where(lengths > 1, t + lengths - 2, 0)
  levels = jnp.where(jnp.arange(n)[None, :] < t, 0, 1)  # not used by evaluate
  return tree_lib.TreeBatch(tokens.reshape(-1), children.reshape(b * n, 2),
                            levels.reshape(-1), slots, lengths,
                            roots.astype(jnp.int32), schedule.astype(jnp.int32))


def tree_scores(score_vector, states: compositions.NodeState,
                trees: tree_lib.TreeBatch, internal) -> jax.Array:
  """[B] sum of u . h over each tree's nodes where internal [M] is True."""
  node = jnp.where(internal, states.h @ score_vector, 0.0)             # [M]
  slots = jnp.asarray(trees.slots)
  return jnp.sum(jnp.where(slots >= 0, node[jnp.maximum(slots, 0)], 0.0), 1)


def merge_tree_scores(params, score_vector, x, tokens, lengths,
                      merges: Parse) -> jax.Array:
  """The tree score s(y) [B] of each sentence's tree given as merges (only
  children and active are read): x [B, T, I] the tokens' inputs, evaluated
  by `models.recursive.evaluate` with the merge order as the schedule."""
  b, t = tokens.shape
  x_slots = jnp.concatenate([x, jnp.zeros_like(x)], 1).reshape(2 * b * t, -1)
  trees = parse_to_trees(merges, tokens, lengths)
  states = recursive.evaluate(_NET, params, x_slots, trees)
  internal = jnp.concatenate([jnp.zeros((b, t), bool), merges.active,
                              jnp.zeros((b, 1), bool)], 1).reshape(-1)
  return tree_scores(score_vector, states, trees, internal)


# ----------------------------------------------------------------------------
# The Flax module.

class Scorer(NamedTuple):
  """What the parser's decisions depend on: params (the 'rnn' composition's),
  u [H] (the score vector) and leaves [B, T, H] (the tokens' leaf vectors).
  A Scorer unpacks into the first three arguments of the parse functions."""
  params: compositions.Params
  u: jax.Array
  leaves: jax.Array


def leaf_states(params, x) -> jax.Array:
  """x [B, T, I] the tokens' inputs -> leaf vectors [B, T, H] = tanh(U x + b)."""
  b, t, _ = x.shape
  gx = _NET.project(params, x).reshape(b * t, -1)
  return _NET.combine(params, gx, None, None).h.reshape(b, t, -1)


def local_losses(terms: LocalTerms, active, objective: str) -> dict[str, jax.Array]:
  """Per-step LocalTerms [B, T - 1] and active [B, T - 1] -> per sentence
  [B]: 'local_hinge', 'local_xent' (sums over merge steps), 'loss' (the
  objective's) and 'loss_count' (merge steps)."""
  out = {"local_hinge": jnp.sum(terms.hinge, 1), "local_xent": jnp.sum(terms.xent, 1)}
  out["loss"] = out["local_hinge" if objective == "local_margin" else "local_xent"]
  out["loss_count"] = jnp.sum(active, 1).astype(jnp.float32)
  return out


def span_errors(parse: Parse, gold_spans) -> jax.Array:
  """[B] float: the parse's merges whose span is not a gold span
  (gold_spans [B, T + 1, T + 1])."""
  rows = jnp.arange(parse.spans.shape[0])[:, None]
  hit = gold_spans[rows, parse.spans[..., 0], parse.spans[..., 1]]
  return jnp.sum(parse.active & ~hit, 1).astype(jnp.float32)


class GreedyParser(nn.Module):
  """Token ids -> parse; with gold trees -> the training loss per sentence.

  __call__(tokens [B, T], lengths [B], gold_merges ([B, T-1, 2] children,
  [B, T-1] active; see `merge_order`) or None, gold_spans [B, T+1, T+1] or
  None, augment) -> dict with
    'parse': Parse. Greedy decoding (beam search when beam_size > 1, see
      `decode`), except while training (augment) with
      gold trees: for the local objectives the teacher-forced parse (the
      gold tree; nothing is decoded), for 'global_margin' the
      loss-augmented greedy parse;
    with the gold trees the objective needs (gold_spans; 'global_margin'
    also gold_merges): 'loss' [B] (per sentence: the sum over its merge
    steps of the local loss, or the structured hinge) and 'loss_count' [B]
    (merge steps, or 1 for 'global_margin'); the loss to minimise is
    sum(loss) / sum(loss_count);
    'local_margin' / 'local_xent': also 'local_hinge' and 'local_xent' [B]
      (both per-step sums, whichever is trained);
    'global_margin': also 'pred_score', 'gold_score' (with gold_merges) and
      'delta' (with gold_spans) [B].
  """
  hidden_size: int
  vocab_size: int
  embed_size: int
  margin: float = 1.0
  objective: str = "local_xent"
  gold_pairs: str = "all"
  beam_size: int = 1
  beam_score: str = ""

  @property
  def beam_score_kind(self) -> str:
    """beam_score, or by default 'log_prob' for the local objectives and
    'sum' (the tree score) for 'global_margin'."""
    if self.beam_score:
      return self.beam_score
    return "sum" if self.objective == "global_margin" else "log_prob"

  def check_settings(self) -> None:
    check_one_of("objective", self.objective, OBJECTIVES)
    check_one_of("gold_pairs", self.gold_pairs, GOLD_PAIRS)
    _check_beam_size(self.beam_size)
    check_one_of("beam_score", self.beam_score, ("",) + BEAM_SCORES)

  def decode(self, params, u, leaves, lengths) -> Parse:
    """Greedy (beam_size 1) or beam search (`beam_parse`, scored by
    `beam_score_kind`)."""
    if self.beam_size == 1:
      return greedy_parse(params, u, leaves, lengths)
    parse, _ = beam_parse(params, u, leaves, lengths, beam_size=self.beam_size,
                          score=self.beam_score_kind)
    return parse

  @nn.compact
  def __call__(self, tokens, lengths, gold_merges=None, gold_spans=None, *,
               augment: bool = False):
    self.check_settings()
    params = self.param("composition", lambda key: _NET.init(
        key, self.embed_size, self.hidden_size, 2))
    u = self.param("score", nn.initializers.normal(1.0 / np.sqrt(self.hidden_size)),
                   (self.hidden_size,))
    embed = nn.Embed(self.vocab_size, self.embed_size, name="embed")
    tokens = jnp.asarray(tokens)
    lengths = jnp.asarray(lengths)
    x = jnp.where((tokens >= 0)[..., None], embed(jnp.maximum(tokens, 0)), 0.0)
    scorer = Scorer(params, u, leaf_states(params, x))
    if self.objective == "global_margin":
      return self._global_margin(scorer, x, tokens, lengths, gold_merges,
                                 gold_spans, augment)
    return self._local(scorer, lengths, gold_spans, augment)

  def _local(self, scorer: Scorer, lengths, gold_spans, augment: bool) -> dict:
    """'local_xent' / 'local_margin': the teacher-forced losses (with
    gold_spans) and the parse (the gold tree while training, else decoded)."""
    out = {}
    if gold_spans is not None:
      forced, terms = teacher_forced_parse(*scorer, lengths,
                                           jnp.asarray(gold_spans),
                                           margin=self.margin,
                                           gold_pairs=self.gold_pairs)
      out.update(local_losses(terms, forced.active, self.objective))
      if augment:
        out["parse"] = jax.tree_util.tree_map(jax.lax.stop_gradient, forced)
        return out
    out["parse"] = self.decode(*jax.lax.stop_gradient(scorer), lengths)
    return out

  def _global_margin(self, scorer: Scorer, x, tokens, lengths, gold_merges,
                     gold_spans, augment: bool) -> dict:
    """'global_margin': the parse (loss-augmented greedy while training,
    else decoded), Delta, both tree scores and the structured hinge."""
    frozen = jax.lax.stop_gradient(scorer)
    if augment:
      parse = greedy_parse(*frozen, lengths, gold_spans=gold_spans,
                           margin=self.margin)
    else:
      parse = self.decode(*frozen, lengths)
    parse = jax.tree_util.tree_map(jax.lax.stop_gradient, parse)
    out = {"parse": parse}
    if gold_spans is not None:
      out["delta"] = self.margin * span_errors(parse, gold_spans)
    if gold_merges is None:
      return out
    score = lambda merges: merge_tree_scores(scorer.params, scorer.u, x, tokens,
                                             lengths, merges)
    gold_children, gold_active = gold_merges
    out["pred_score"] = score(parse)
    out["gold_score"] = score(parse._replace(children=jnp.asarray(gold_children),
                                             active=jnp.asarray(gold_active)))
    if gold_spans is not None:
      out["loss"] = jax.nn.relu(out["pred_score"] + out["delta"] - out["gold_score"])
      out["loss_count"] = jnp.ones((tokens.shape[0],), jnp.float32)
    return out
