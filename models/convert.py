"""Weight conversion between this project's cells and PyTorch's nn.RNN/LSTM/GRU.

Works on plain arrays (numpy or anything `np.asarray` accepts); torch is never
imported. PyTorch stores `weight_ih_l{k}[_reverse]` as [G*H, I] with the same
gate order as ours (LSTM i, f, g, o; GRU r, z, n), so conversion is a
transpose. PyTorch's LSTM and Elman RNN carry two biases that always appear
summed; we keep one (`b = b_ih + b_hh`), and export it as `b_ih = b`,
`b_hh = 0`. The GRU keeps both biases (b_hh sits inside r * (...)), and only
its `reset_after=True` form matches PyTorch.

Layer layout returned by `from_torch`: a list with one entry per layer, each a
cell params dict, or {'forward': ..., 'backward': ...} when bidirectional;
exactly what `models.unroll.stacked` takes.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from models.checks import check_one_of

_KINDS = ("rnn", "lstm", "gru")


def _suffix(layer: int, backward: bool) -> str:
  return f"_l{layer}" + ("_reverse" if backward else "")


def _one_from_torch(state_dict: Mapping[str, Any], kind: str, layer: int,
                    backward: bool, dtype) -> dict[str, jnp.ndarray]:
  sfx = _suffix(layer, backward)
  try:
    w_ih = np.asarray(state_dict["weight_ih" + sfx])
    w_hh = np.asarray(state_dict["weight_hh" + sfx])
    b_ih = np.asarray(state_dict["bias_ih" + sfx])
    b_hh = np.asarray(state_dict["bias_hh" + sfx])
  except KeyError as e:
    raise ValueError(f"state_dict: missing {e.args[0]!r} (layer {layer}, "
                     f"{'backward' if backward else 'forward'}); keys present: "
                     f"{sorted(state_dict)}") from None
  gates = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
  hidden = w_hh.shape[1]
  if w_hh.shape != (gates * hidden, hidden) or w_ih.shape[0] != gates * hidden:
    raise ValueError(f"state_dict: weights of layer {layer} have shapes "
                     f"{w_ih.shape} and {w_hh.shape}, not those of a torch "
                     f"{kind} ([{gates}H, I] and [{gates}H, H])")
  params = {"w_ih": w_ih.T, "w_hh": w_hh.T}
  if kind == "gru":
    params.update(b_ih=b_ih, b_hh=b_hh)
  else:
    params["b"] = b_ih + b_hh
  return {k: jnp.asarray(v, dtype) for k, v in params.items()}


def from_torch(state_dict: Mapping[str, Any], kind: str, *, num_layers: int = 1,
               bidirectional: bool = False, dtype=jnp.float32) -> list[Any]:
  """Converts a torch nn.RNN/LSTM/GRU state dict (arrays) to layer params.

  Args:
    state_dict: e.g. {k: v.detach().numpy() for k, v in m.state_dict().items()}.
    kind: 'rnn' (tanh or relu), 'lstm' or 'gru' (use cells.gru(reset_after=True)).
    num_layers, bidirectional: as given to the torch module.
  """
  check_one_of("kind", kind, _KINDS)
  layers = []
  for layer in range(num_layers):
    if bidirectional:
      layers.append({
          "forward": _one_from_torch(state_dict, kind, layer, False, dtype),
          "backward": _one_from_torch(state_dict, kind, layer, True, dtype)})
    else:
      layers.append(_one_from_torch(state_dict, kind, layer, False, dtype))
  return layers


def _one_to_torch(params, layer: int, backward: bool) -> dict[str, np.ndarray]:
  sfx = _suffix(layer, backward)
  out = {"weight_ih" + sfx: np.asarray(params["w_ih"]).T.copy(),
         "weight_hh" + sfx: np.asarray(params["w_hh"]).T.copy()}
  if "b_ih" in params:
    out["bias_ih" + sfx] = np.asarray(params["b_ih"]).copy()
    out["bias_hh" + sfx] = np.asarray(params["b_hh"]).copy()
  else:
    bias = np.asarray(params["b"])
    out["bias_ih" + sfx] = bias.copy()
    out["bias_hh" + sfx] = np.zeros_like(bias)
  return out


def to_torch(layers, *, bidirectional: bool = False) -> dict[str, np.ndarray]:
  """The inverse of `from_torch`: numpy arrays keyed as torch's state_dict.

  Load with `module.load_state_dict({k: torch.from_numpy(v) ...})`.
  """
  out: dict[str, np.ndarray] = {}
  for layer, params in enumerate(layers):
    if bidirectional:
      out.update(_one_to_torch(params["forward"], layer, False))
      out.update(_one_to_torch(params["backward"], layer, True))
    else:
      out.update(_one_to_torch(params, layer, False))
  return out
