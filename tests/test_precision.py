"""Mixed precision (precision.py): the casts, every model family computing in
bfloat16 when handed bfloat16 params and inputs, the fused recurrences'
float32 accumulation, and a bfloat16 training run that solves its task."""

import importlib

import jax
import jax.extend.core as jex_core
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

import precision
import tasks
import train
from experiments.configs import adding as adding_config
from models import cells
from models import unroll
from tests.test_train import tiny

BF16 = jnp.dtype(jnp.bfloat16)
F32 = jnp.dtype(jnp.float32)


# ----------------------------------------------------------------------------
# Helpers.

def _sub_jaxprs(eqn):
  """The jaxprs inside an equation (scan, while, cond, custom_vjp, pjit)."""
  for value in eqn.params.values():
    for item in value if isinstance(value, (list, tuple)) else (value,):
      if isinstance(item, jex_core.ClosedJaxpr):
        yield item.jaxpr
      elif isinstance(item, jex_core.Jaxpr):
        yield item


def matmuls(jaxpr) -> list[tuple[tuple[jnp.dtype, ...], jnp.dtype | None]]:
  """(operand dtypes, preferred_element_type) of every dot_general and
  convolution in jaxpr and the jaxprs nested in it."""
  found = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in ("dot_general", "conv_general_dilated"):
      found.append((tuple(jnp.dtype(v.aval.dtype) for v in eqn.invars),
                    eqn.params.get("preferred_element_type")))
    for inner in _sub_jaxprs(eqn):
      found.extend(matmuls(inner))
  return found


def relative_error(reference, value) -> float:
  """||value - reference|| / ||reference|| over all leaves, in float64."""
  pairs = zip(jax.tree_util.tree_leaves(reference), jax.tree_util.tree_leaves(value))
  num = den = 0.0
  for a, b in pairs:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    num += np.sum((a - b) ** 2)
    den += np.sum(a ** 2)
  return float(np.sqrt(num / den))


def floating_dtypes(tree) -> set:
  return {jnp.dtype(leaf.dtype) for leaf in jax.tree_util.tree_leaves(tree)
          if jnp.issubdtype(leaf.dtype, jnp.floating)}


# ----------------------------------------------------------------------------
# precision.py.

def test_cast_floating_casts_floating_leaves_only():
  tree = {"f32": jnp.ones(3), "numpy_f32": np.ones(2, np.float32),
          "ints": jnp.arange(3), "bools": np.array([True, False]), "none": None,
          "name": "x", "count": 3, "rate": 0.5}
  out = precision.cast_floating(tree, jnp.bfloat16)
  assert out["f32"].dtype == BF16 and out["numpy_f32"].dtype == BF16
  np.testing.assert_array_equal(np.asarray(out["f32"], np.float32), np.ones(3))
  for key in ("ints", "bools", "none", "name", "count", "rate"):
    assert out[key] is tree[key], key


def test_compute_dtype_reads_the_config():
  assert precision.compute_dtype(ml_collections.ConfigDict()) == F32
  assert precision.compute_dtype(
      ml_collections.ConfigDict({"compute_dtype": "bfloat16"})) == BF16
  with pytest.raises(ValueError, match=r"compute_dtype: expected one of "
                     r"\['float32', 'bfloat16'\], got 'float16'"):
    precision.compute_dtype(ml_collections.ConfigDict({"compute_dtype": "float16"}))


# ----------------------------------------------------------------------------
# Every model family in bfloat16, built from the real configs at tiny sizes.

def config(name: str, arg=None, **overrides) -> ml_collections.ConfigDict:
  cfg = importlib.import_module(f"experiments.configs.{name}").get_config(arg)
  cfg.hidden_size = 8
  cfg.batch_size = 4
  cfg.eval_batch_size = 4
  cfg.num_eval_examples = 8
  for key, value in overrides.items():
    cfg[key] = value
  return cfg


# One task per model family: fused LSTM classifier (learned initial state),
# language model with a carried state and resets, seq2seq with attention,
# Tree-LSTM, word and character tagger, sentiment (bidirectional, max
# pooling), piano roll (GRU, float frames), captioner (CNN, uint8 images,
# soft attention).
TASK_CONFIGS = {
    "adding_lstm": lambda: config("adding", seq_len=10, learn_initial_state=True),
    "ptb_carry": lambda: config("ptb", "small", eval_batch_size=2, seq_len=6),
    "reversal_attention": lambda: config("reversal", "attention", max_len=6),
    "listops_tree_lstm": lambda: config("listops", "tree_lstm", max_train_size=4,
                                        max_eval_size=4, embed_size=8),
    "tagging": lambda: config("tagging", "ud_he", max_train_size=4, max_eval_size=4,
                              bucket_boundaries="128", embed_size=8,
                              char_embed_size=4, char_hidden_size=4),
    "sentiment": lambda: config("sentiment", "rt", max_train_size=4, max_eval_size=4,
                                bucket_boundaries="64", embed_size=8,
                                bidirectional=True, pooling="max"),
    "music_gru": lambda: config("music", "gru", eval_batch_size=2),
    "captioning": lambda: config("captioning", "shapes_attention", max_train_size=4,
                                 max_eval_size=2, conv_channels="4,4,4",
                                 embed_size=8),
}


@pytest.mark.parametrize("name", sorted(TASK_CONFIGS))
def test_task_computes_in_bfloat16(name):
  task = tasks.build(TASK_CONFIGS[name]())
  batch = jax.tree_util.tree_map(jnp.asarray, task.first_batch())
  params = task.init_params(jax.random.PRNGKey(0), batch)
  carry = task.carry_for(batch)
  rng = jax.random.PRNGKey(1)
  apply16 = train._apply_in(task, BF16)

  # Every matmul of the step's bfloat16 forward pass reads bfloat16 operands:
  # any float32 constant, state or input on the way would promote them.
  jaxpr = jax.make_jaxpr(
      lambda p, b, c: apply16(p, b, rng, c, train=True))(params, batch, carry)
  found = matmuls(jaxpr.jaxpr)
  assert found
  assert all(dtypes == (BF16, BF16) for dtypes, _ in found), found
  # The model's own outputs and carry are bfloat16 (train casts them back).
  raw = jax.eval_shape(lambda p, b, c: task.apply(
      precision.cast_floating(p, BF16), precision.cast_floating(b, BF16), rng,
      precision.cast_floating(c, BF16), train=True), params, batch, carry)
  assert floating_dtypes(raw) == {BF16}

  @jax.jit
  def losses(params, batch, carry):
    out = []
    for dtype in (F32, BF16):
      outputs, _ = train._apply_in(task, dtype)(params, batch, None, carry,
                                                train=False)
      out.append(task.loss(outputs, batch)[0])
    return out
  loss32, loss16 = losses(params, batch, carry)
  assert loss16.dtype == F32
  np.testing.assert_allclose(loss16, loss32, rtol=2e-2)


def test_bfloat16_train_step_keeps_float32_state():
  cfg = TASK_CONFIGS["adding_lstm"]()
  task = tasks.build(cfg)
  batch = task.first_batch()
  tx = optax.adam(1e-3)
  losses, states = [], []
  for dtype in (F32, BF16):
    state = train.initial_state(cfg, task, tx)   # fresh: the step donates it
    train_step, _ = train.make_steps(task, tx, 0.0, dtype)
    state, metrics = train_step(state, batch)
    losses.append(metrics["loss"])
    states.append(state)
  assert floating_dtypes((states[1].params, states[1].opt_state)) == {F32}
  np.testing.assert_allclose(losses[1], losses[0], rtol=2e-2)
  assert relative_error(states[0].params, states[1].params) < 1e-3


# ----------------------------------------------------------------------------
# The fused recurrences: bfloat16 operands, float32 accumulation.

@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_fused_accumulates_in_float32(name):
  batch, steps, inputs, hidden = 3, 12, 5, 16
  cell = cells.get_cell(name)
  params = cell.init(jax.random.PRNGKey(0), inputs, hidden)
  xs = jax.random.normal(jax.random.PRNGKey(1), (batch, steps, inputs))
  lengths = jnp.array([12, 7, 0])
  input_mask, recurrent_mask = unroll.variational_masks(
      jax.random.PRNGKey(2), batch, inputs, hidden, 0.2, 0.3)
  weights = jax.random.normal(jax.random.PRNGKey(3), (steps, hidden))
  assert unroll._choose_implementation(cell, "auto", BF16,
                                       (batch, steps, inputs)) == "fused"

  def run(params, xs):
    return unroll.rnn(cell, params, xs, lengths, implementation="fused",
                      input_mask=input_mask, recurrent_mask=recurrent_mask)

  def objective(params, xs):
    ys, final = run(params, xs)
    return (jnp.sum(ys.astype(F32) * weights[None])
            + sum(jnp.sum(s.astype(F32)) for s in jax.tree_util.tree_leaves(final)))

  grad = jax.grad(objective, argnums=(0, 1))
  p16, x16 = precision.cast_floating((params, xs), BF16)
  for fn in (run, grad):   # the primal (feature-major) and the training pass
    found = matmuls(jax.make_jaxpr(fn)(p16, x16).jaxpr)
    assert found
    assert all(dtypes == (BF16, BF16) and preferred == F32
               for dtypes, preferred in found), found

  ys16, final16 = jax.jit(run)(p16, x16)
  assert floating_dtypes((ys16, final16)) == {BF16}
  ys32, final32 = jax.jit(run)(params, xs)
  assert relative_error((ys32, final32), (ys16, final16)) < 2e-2
  grads16 = jax.jit(grad)(p16, x16)
  assert floating_dtypes(grads16) == {BF16}
  assert relative_error(jax.jit(grad)(params, xs), grads16) < 3e-2


def test_bfloat16_never_runs_cudnn():
  cell = cells.lstm()
  with pytest.raises(ValueError, match="float32 cell"):
    unroll._choose_implementation(cell, "cudnn", BF16, (2, 3, 4))


# ----------------------------------------------------------------------------
# Training in bfloat16.

def test_bfloat16_training_solves_adding(tmp_path, monkeypatch):
  cfg = tiny(adding_config.get_config(), seq_len=10, hidden_size=32,
             batch_size=32, num_train_steps=2000, lr_decay_steps=2000,
             eval_every_steps=100, log_every_steps=100, num_eval_examples=256,
             eval_batch_size=256, stop_when_solved=True,
             compute_dtype="bfloat16")
  cast_to = []
  original = precision.cast_floating

  def recording(tree, dtype):
    cast_to.append(jnp.dtype(dtype))
    return original(tree, dtype)
  monkeypatch.setattr(precision, "cast_floating", recording)
  summary = train.train_and_evaluate(cfg, str(tmp_path))
  assert summary["solved"], summary
  assert summary["step"] < cfg.num_train_steps
  assert BF16 in cast_to
