"""Compositions: hidden-size rules, leaves, absent children, lookup by name."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import compositions

NAMES = ("rnn", "tree_lstm", "child_sum")


def _init(name, hidden=5, features=3, **options):
  comp = compositions.get_composition(name, **options)
  return comp, comp.init(jax.random.PRNGKey(0), features, hidden, comp.arity)


@pytest.mark.parametrize("name", NAMES)
def test_hidden_size_is_read_from_the_params(name):
  for hidden in (1, 5):
    comp, params = _init(name, hidden=hidden)
    assert comp.hidden_size(params) == hidden
  if name != "child_sum":
    comp, params = _init(name, hidden=4, arity=3)
    assert comp.hidden_size(params) == 4


@pytest.mark.parametrize("name", NAMES)
def test_leaves_equal_nodes_whose_children_are_all_absent(name):
  comp, params = _init(name)
  params = jax.tree_util.tree_map(lambda p: p + 0.1, params)
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 3))
  gx = comp.project(params, x)                                          # [W, G]
  a = comp.arity or 3
  kids = jnp.ones((4, a, 5))
  leaf = comp.combine(params, gx, None, None)
  masked = comp.combine(params, gx, compositions.NodeState(kids, kids),
                        jnp.zeros((4, a), bool))
  assert leaf.h.shape == (4, 5) and leaf.c.shape == (4, 5)
  np.testing.assert_allclose(leaf.h, masked.h, atol=1e-6)
  np.testing.assert_allclose(leaf.c, masked.c, atol=1e-6)


def test_unknown_compositions_and_options_are_errors():
  with pytest.raises(ValueError, match=r"unknown composition 'gru'"):
    compositions.get_composition("gru")
  with pytest.raises(ValueError, match=r"composition 'child_sum': bad options"):
    compositions.get_composition("child_sum", arity=2)


def test_composition_from_settings_passes_only_what_it_takes():
  rnn = compositions.composition_from_settings("rnn", arity=3, forget_bias=2.0)
  assert (rnn.name, rnn.arity) == ("rnn", 3)
  cs = compositions.composition_from_settings("child_sum", arity=3, forget_bias=2.0)
  assert (cs.name, cs.arity) == ("child_sum", None)
  params = cs.init(jax.random.PRNGKey(0), 3, 4, cs.arity)
  np.testing.assert_array_equal(params["b"][12:], 2.0)
  with pytest.raises(ValueError, match=r"unknown composition"):
    compositions.composition_from_settings("gru", arity=2)
