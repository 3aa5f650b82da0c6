"""Paired A/B of models/fused.py: a git revision's version against the working tree's.

  python -m tools.perf.fused_ab --base=HEAD~1 [--cell=lstm] [--shape=big] \
      [--mode=train] [--ab_rounds=13]

Loads `git show BASE:models/fused.py` as a second module and times, in
interleaved rounds (`timing.time_interleaved`: two timed calls each, after
one untimed call), the LSTM or GRU layer of both versions (time-major
inputs, no mask) and PyTorch's nn.LSTM/nn.GRU when torch is installed. Prints
the largest relative gradient difference between the two versions (train
mode) and, per implementation, the median time and the paired ratios (median
over rounds of the peer's time / this one's) to torch and to the base. The
A/B comparisons in docs/performance.md come from this script. Shapes as in
rnn_speed.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import tempfile

import jax
import jax.numpy as jnp
from absl import app, flags

from benchmarks import rnn_speed, timing
from models import fused

flags.DEFINE_string("base", "HEAD", "Git revision whose models/fused.py is the base.")
flags.DEFINE_enum("cell", "lstm", ["lstm", "gru"], "Cell.")
flags.DEFINE_enum("shape", "big", sorted(rnn_speed.SHAPES), "Shape.")
flags.DEFINE_enum("mode", "train", ["train", "forward"], "train or forward.")
flags.DEFINE_integer("ab_rounds", 13, "Interleaved rounds.")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_fused(revision: str):
  """models/fused.py as it was at `revision`, as a module of its own."""
  shown = subprocess.run(["git", "show", f"{revision}:models/fused.py"],
                         cwd=ROOT, capture_output=True, check=False)
  if shown.returncode:
    raise ValueError(f"--base: no models/fused.py at revision {revision!r}: "
                     f"{shown.stderr.decode().strip()}")
  source = shown.stdout
  with tempfile.NamedTemporaryFile("wb", suffix=".py", delete=False) as f:
    f.write(source)
  spec = importlib.util.spec_from_file_location(f"fused_at_{revision}", f.name)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  os.unlink(f.name)
  return module


def layer_fn(module, cell: str, shape, mode: str):
  """(jitted function, its arguments) for one version's layer."""
  batch, _, inputs, hidden = shape
  gates = 4 if cell == "lstm" else 3
  keys = jax.random.split(jax.random.PRNGKey(0), 5)
  params = [jax.random.normal(keys[0], (inputs, gates * hidden)) * 0.05,
            jax.random.normal(keys[1], (gates * hidden,)) * 0.1,
            jax.random.normal(keys[2], (hidden, gates * hidden)) * 0.05]
  if cell == "gru":
    params.append(jax.random.normal(keys[3], (gates * hidden,)) * 0.1)
  xs = jax.random.normal(keys[4], shape[:3])
  h0 = jnp.zeros((batch, hidden))

  def apply(p, x):
    x = jnp.swapaxes(x, 0, 1)
    if cell == "lstm":
      return module.lstm(*p, x, None, h0, h0)[0]
    return module.gru(*p, x, None, h0)[0]
  fn = jax.jit(jax.grad(lambda p, x: jnp.sum(apply(p, x)), argnums=(0, 1))
               if mode == "train" else apply)
  return fn, (tuple(params), xs)


def main(argv):
  del argv
  f = flags.FLAGS
  shape = rnn_speed.SHAPES[f.shape]
  versions = {"base": load_fused(f.base), "new": fused}
  fns = {name: layer_fn(m, f.cell, shape, f.mode) for name, m in versions.items()}
  if f.mode == "train":
    base, new = (jax.tree_util.tree_leaves(fn(*args)) for fn, args in fns.values())
    diff = max(float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(a)) + 1e-12))
               for a, b in zip(base, new))
    print(f"largest relative gradient difference base/new: {diff:.2e}")
  impls = {name: rnn_speed._compiled(fn, *args).run  # pylint: disable=protected-access
           for name, (fn, args) in fns.items()}
  try:
    impls["torch"] = rnn_speed.torch_rnn(f.cell, shape, f.mode).run
  except ImportError:
    pass
  samples = timing.time_interleaved(impls, f.ab_rounds, 2)
  print(f"== {f.cell} {f.shape} {f.mode}, base {f.base}, {f.ab_rounds} rounds")
  for name, times in samples.items():
    line = f"  {name:6s} {statistics.median(times) * 1e3:9.1f} ms"
    for peer in ("torch", "base"):
      if peer in samples:
        line += f"  {peer}/this {timing.paired_ratio(times, samples[peer]):.3f}"
    print(line, flush=True)


if __name__ == "__main__":
  app.run(main)
