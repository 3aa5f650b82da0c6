"""PyTorch weight conversion, checked against numpy versions of torch's equations.

The numpy references below follow the formulas in PyTorch's nn.LSTM / nn.GRU /
nn.RNN documentation on torch's own layout (W [G*H, I], two biases), so they
share no code with models/. When torch is installed the same checks also run
against the real modules.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import cells, convert, unroll

B, T, I, H = 3, 6, 4, 5
LENGTHS = np.array([6, 2, 4], np.int32)


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _torch_step(kind, sd, sfx, x, h, c):
  w_ih, w_hh = sd["weight_ih" + sfx], sd["weight_hh" + sfx]
  b_ih, b_hh = sd["bias_ih" + sfx], sd["bias_hh" + sfx]
  gi, gh = w_ih @ x + b_ih, w_hh @ h + b_hh
  if kind == "lstm":
    i, f, g, o = np.split(gi + gh, 4)
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    return _sigmoid(o) * np.tanh(c), c
  if kind == "gru":
    r = _sigmoid(gi[:H] + gh[:H])
    z = _sigmoid(gi[H:2 * H] + gh[H:2 * H])
    n = np.tanh(gi[2 * H:] + r * gh[2 * H:])
    return (1 - z) * n + z * h, c
  return np.tanh(gi + gh), c


def _torch_reference(kind, sd, xs, lengths, num_layers, bidirectional):
  """Loops over layers, directions, sequences and steps in plain numpy."""
  outputs, finals = xs.astype(np.float64), []
  for layer in range(num_layers):
    dirs = [""] + (["_reverse"] if bidirectional else [])
    per_dir = []
    for d in dirs:
      sfx = f"_l{layer}{d}"
      ys = np.zeros(outputs.shape[:2] + (H,))
      fin = np.zeros((len(xs), H))
      for b, length in enumerate(lengths):
        h, c = np.zeros(H), np.zeros(H)
        steps = range(length)
        for t in (reversed(steps) if d else steps):
          h, c = _torch_step(kind, sd, sfx, outputs[b, t], h, c)
          ys[b, t] = h
        fin[b] = h
      per_dir.append(ys)
      finals.append(fin)
    outputs = np.concatenate(per_dir, axis=-1)
  return outputs, finals


def _random_state_dict(kind, num_layers, bidirectional, seed=0):
  rng = np.random.default_rng(seed)
  gates = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
  sd = {}
  for layer in range(num_layers):
    inp = I if layer == 0 else H * (2 if bidirectional else 1)
    for d in [""] + (["_reverse"] if bidirectional else []):
      sfx = f"_l{layer}{d}"
      sd["weight_ih" + sfx] = rng.uniform(-0.5, 0.5, (gates * H, inp)).astype(np.float32)
      sd["weight_hh" + sfx] = rng.uniform(-0.5, 0.5, (gates * H, H)).astype(np.float32)
      sd["bias_ih" + sfx] = rng.uniform(-0.5, 0.5, (gates * H,)).astype(np.float32)
      sd["bias_hh" + sfx] = rng.uniform(-0.5, 0.5, (gates * H,)).astype(np.float32)
  return sd


CELL_FOR = {"lstm": cells.lstm, "gru": lambda: cells.gru(reset_after=True),
            "rnn": lambda: cells.elman("tanh")}


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_from_torch_matches_torch_equations(kind, bidirectional):
  sd = _random_state_dict(kind, 2, bidirectional)
  layers = convert.from_torch(sd, kind, num_layers=2, bidirectional=bidirectional)
  xs = np.random.default_rng(1).normal(size=(B, T, I)).astype(np.float32)
  ys, finals = unroll.stacked(CELL_FOR[kind](), layers, jnp.asarray(xs),
                              jnp.asarray(LENGTHS), bidirectional=bidirectional)
  want_ys, want_finals = _torch_reference(kind, sd, xs, LENGTHS, 2, bidirectional)
  np.testing.assert_allclose(ys, want_ys, atol=1e-5)
  flat_h = [s.h for layer in finals
            for s in (layer if bidirectional else (layer,))]
  for got, want in zip(flat_h, want_finals):
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_round_trip(kind):
  sd = _random_state_dict(kind, 2, True)
  layers = convert.from_torch(sd, kind, num_layers=2, bidirectional=True)
  back = convert.to_torch(layers, bidirectional=True)
  assert sorted(back) == sorted(sd)
  for key, value in sd.items():
    if key.startswith("weight") or kind == "gru":
      np.testing.assert_array_equal(back[key], value)
  if kind != "gru":  # biases come back summed into bias_ih
    np.testing.assert_allclose(back["bias_ih_l1"] + back["bias_hh_l1"],
                               sd["bias_ih_l1"] + sd["bias_hh_l1"], rtol=1e-6)
  again = convert.from_torch(back, kind, num_layers=2, bidirectional=True)
  jax.tree_util.tree_map(np.testing.assert_array_equal, again, layers)


def test_bad_state_dicts_raise_clear_errors():
  sd = _random_state_dict("lstm", 1, False)
  with pytest.raises(ValueError, match="missing 'weight_ih_l0_reverse'"):
    convert.from_torch(sd, "lstm", bidirectional=True)
  with pytest.raises(ValueError, match="not those of a torch gru"):
    convert.from_torch(sd, "gru")
  with pytest.raises(ValueError, match="kind: expected one of"):
    convert.from_torch(sd, "lstn")


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_against_real_torch_if_installed(kind):
  torch = pytest.importorskip("torch")
  torch.manual_seed(0)
  module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](
      I, H, num_layers=2, bidirectional=True, batch_first=True)
  sd = {k: v.detach().numpy() for k, v in module.state_dict().items()}
  layers = convert.from_torch(sd, kind, num_layers=2, bidirectional=True)
  xs = np.random.default_rng(2).normal(size=(B, T, I)).astype(np.float32)
  packed = torch.nn.utils.rnn.pack_padded_sequence(
      torch.from_numpy(xs), torch.from_numpy(LENGTHS).long(), batch_first=True,
      enforce_sorted=False)
  out, _ = module(packed)
  want_padded, _ = torch.nn.utils.rnn.pad_packed_sequence(
      out, batch_first=True, total_length=T)
  want = want_padded.detach().numpy()

  def loss_jax(layers, x):
    ys, _ = unroll.stacked(CELL_FOR[kind](), layers, x, jnp.asarray(LENGTHS),
                           bidirectional=True)
    return jnp.sum(jnp.sin(ys)), ys
  (_, ys), grads = jax.value_and_grad(loss_jax, has_aux=True)(layers, jnp.asarray(xs))
  np.testing.assert_allclose(ys, want, atol=1e-5)
  torch.sin(want_padded).sum().backward()  # the same loss on torch's side
  torch_grads = {k: v.grad.numpy() for k, v in module.named_parameters()}
  ours = convert.to_torch(grads, bidirectional=True)
  for key in torch_grads:
    if key.startswith("weight") or kind == "gru":
      np.testing.assert_allclose(ours[key], torch_grads[key], atol=1e-4)
    else:  # d(b_ih) = d(b_hh) = d(b) for the summed bias
      np.testing.assert_allclose(ours[key.replace("bias_hh", "bias_ih")],
                                 torch_grads[key], atol=1e-4)
