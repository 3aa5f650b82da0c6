"""LSTM/GRU layer speed: this project vs Flax's nn.RNN vs PyTorch (if installed).

  python -m benchmarks.rnn_speed [--cells=lstm,gru] [--shapes=small,big] \
      [--rounds=7] [--modes=train,forward] [--layouts=single,bidirectional,stacked2]

Shapes (float32): small B=32 T=100 I=128 H=256; big B=64 T=200 I=512 H=512.
"train" is forward + backward through time (grads of sum(ys) w.r.t. params
and inputs); "forward" is the forward pass alone. Implementations are timed
in interleaved rounds (each round times every implementation once, a few
calls each, after one untimed call: `--warmup_calls`) and the medians over
rounds are reported, with each implementation's ratio to the peers measured
in the same run (>1 = faster than the peer) and its throughput as a fraction
of this machine's GEMM peak (a large float32 matmul, measured in the same
run).

PyTorch peers run only when torch is importable (`pip install -r
requirements-bench.txt`); torch uses the same number of threads as cores.

On a GPU (JAX's default backend 'gpu'), torch runs on CUDA too (its LSTM and
GRU are cuDNN calls), "ours" is `models.unroll.rnn` as a user gets it (for
both cells, the fused `lax.scan` of `models.fused`), and for the LSTM "ours
cudnn" is the same layer through cuDNN (`implementation='cudnn'`).
`--matmul_precision=highest` turns TF32 off on both sides (JAX's default
precision and torch's cuDNN/matmul TF32 switches); the default leaves each
library's defaults, both of which allow TF32 in cuDNN's LSTM.

Columns: the median time per call; its fraction of the GEMM peak (the best
rate of a large matmul measured at the start and before each group of rows);
the ratio of medians (ours / this: above 1 means ours is faster); the paired
ratio (the median over rounds of this round's ours / this, which cancels
drifts of the machine's speed between rounds); and, for JAX implementations,
the working memory XLA plans for one call (temporary buffers + outputs, from
the compiled program's memory analysis; parameters and inputs are not
counted).
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from absl import app, flags

from benchmarks.timing import gemm_peak_flops, paired_ratio, time_interleaved
from models import cells, cudnn, unroll

flags.DEFINE_list("cells", ["lstm", "gru"], "Cells to time.")
flags.DEFINE_list("shapes", ["small", "big"], "Shapes to time.")
flags.DEFINE_list("modes", ["train", "forward"], "train and/or forward.")
flags.DEFINE_integer("rounds", 7, "Interleaved rounds (median is reported).")
flags.DEFINE_integer("calls", 3, "Timed calls per implementation per round.")
flags.DEFINE_integer("warmup_calls", 1, "Untimed calls before each "
                     "implementation's timed calls in a round (0: time the "
                     "first call after the previous implementation's).")
flags.DEFINE_list("layouts", ["single"], "single: one layer; bidirectional: "
                  "one bidirectional layer (outputs concatenated); stacked2: "
                  "two stacked layers.")
flags.DEFINE_enum("matmul_precision", "default", ["default", "highest"],
                  "default: each library's defaults; highest: float32 "
                  "matmuls without TF32 on a GPU (JAX and torch).")

SHAPES = {"small": (32, 100, 128, 256), "big": (64, 200, 512, 512)}


def _block(x):
  return jax.tree_util.tree_map(lambda a: a.block_until_ready(), x)


@dataclasses.dataclass
class Impl:
  """One implementation to time: `run()` makes one call and waits for it."""
  run: Callable[[], object]
  memory_bytes: int | None = None  # XLA temporaries + outputs, if known
  compiled: Any = None  # the compiled XLA program, if there is one


def _compiled(fn, *args) -> Impl:
  """Compiles jitted `fn` for `args` once; reports XLA's planned memory."""
  compiled = fn.lower(*args).compile()
  analysis = compiled.memory_analysis()
  memory = None if analysis is None else (analysis.temp_size_in_bytes +
                                          analysis.output_size_in_bytes)
  return Impl(lambda: _block(compiled(*args)), memory, compiled)


def ours(cell_name: str, shape, mode: str, layout: str = "single",
         implementation: str = "auto") -> Impl:
  """This project's layer (`models.unroll`) as a user calls it, jitted."""
  batch, steps, inputs, hidden = shape
  cell = cells.get_cell(cell_name)
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  options = dict(implementation=implementation)
  if layout == "single":
    params = cell.init(keys[0], inputs, hidden)
    apply = lambda p, x: unroll.rnn(cell, p, x, **options)[0]
  elif layout == "bidirectional":
    params = {"forward": cell.init(keys[0], inputs, hidden),
              "backward": cell.init(keys[1], inputs, hidden)}
    apply = lambda p, x: unroll.bidirectional(cell, p, x, **options)[0]
  else:
    params = [cell.init(keys[0], inputs, hidden),
              cell.init(keys[1], hidden, hidden)]
    apply = lambda p, x: unroll.stacked(cell, p, x, **options)[0]
  xs = jax.random.normal(jax.random.PRNGKey(1), (batch, steps, inputs))

  def loss(p, x):
    return jnp.sum(apply(p, x))
  fn = jax.jit(jax.grad(loss, argnums=(0, 1)) if mode == "train" else apply)
  return _compiled(fn, params, xs)


_FLAX_CELLS = {"lstm": nn.LSTMCell, "lstm_optimized": nn.OptimizedLSTMCell,
               "gru": nn.GRUCell}


class _FlaxStack(nn.Module):
  cell: str
  hidden: int
  layout: str

  @nn.compact
  def __call__(self, x):
    make = lambda: nn.RNN(_FLAX_CELLS[self.cell](features=self.hidden))
    if self.layout == "single":
      return make()(x)
    if self.layout == "bidirectional":
      return nn.Bidirectional(make(), make())(x)
    return make()(make()(x))


def flax_rnn(flax_cell: str, shape, mode: str,
             layout: str = "single") -> Impl:
  batch, steps, inputs, hidden = shape
  layer = _FlaxStack(flax_cell, hidden, layout)
  xs = jax.random.normal(jax.random.PRNGKey(1), (batch, steps, inputs))
  params = layer.init(jax.random.PRNGKey(0), xs)

  def loss(p, x):
    return jnp.sum(layer.apply(p, x))
  fn = jax.jit(jax.grad(loss, argnums=(0, 1)) if mode == "train" else
               (lambda p, x: layer.apply(p, x)))
  return _compiled(fn, params, xs)


def torch_rnn(cell_name: str, shape, mode: str,
              layout: str = "single") -> Impl:
  import torch  # pylint: disable=g-import-not-at-top
  batch, steps, inputs, hidden = shape
  device = _torch_device()
  module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell_name](
      inputs, hidden, batch_first=True, bidirectional=layout == "bidirectional",
      num_layers=2 if layout == "stacked2" else 1).to(device)
  xs = torch.randn(batch, steps, inputs, device=device,
                   requires_grad=(mode == "train"))
  wait = torch.cuda.synchronize if device == "cuda" else (lambda: None)

  def run():
    if mode == "train":
      module.zero_grad(set_to_none=True)
      xs.grad = None
      module(xs)[0].sum().backward()
    else:
      with torch.no_grad():
        module(xs)
    wait()
  return Impl(run)


def _torch_device() -> str:
  """'cuda' when JAX runs on a GPU and torch sees one, else 'cpu'."""
  import torch  # pylint: disable=g-import-not-at-top
  return "cuda" if cudnn.gpu_backend() and torch.cuda.is_available() else "cpu"


def model_flops(cell_name: str, shape, mode: str, layout: str = "single") -> float:
  """Matmul FLOPs of one call: 2*B*T*(I+H)*G*H forward per layer and
  direction, x3 with backward."""
  batch, steps, inputs, hidden = shape
  gates = {"lstm": 4, "gru": 3}[cell_name]
  forward = 2 * batch * steps * (inputs + hidden) * gates * hidden
  if layout == "bidirectional":
    forward *= 2
  elif layout == "stacked2":
    forward += 2 * batch * steps * 2 * hidden * gates * hidden
  return forward * (3 if mode == "train" else 1)


def main(argv):
  del argv
  highest = flags.FLAGS.matmul_precision == "highest"
  if highest:
    jax.config.update("jax_default_matmul_precision", "highest")
  try:
    import torch  # pylint: disable=g-import-not-at-top
    import os  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(os.cpu_count() or 1)
    if highest:
      torch.backends.cudnn.allow_tf32 = False
      torch.backends.cuda.matmul.allow_tf32 = False
    torch_note = (f"torch {torch.__version__} on {_torch_device()} (cuDNN "
                  f"TF32 {torch.backends.cudnn.allow_tf32}, matmul TF32 "
                  f"{torch.backends.cuda.matmul.allow_tf32})")
    have_torch = True
  except ImportError:
    have_torch, torch_note = False, "torch: no"
  peak = gemm_peak_flops()
  print(f"device: {jax.devices()[0].device_kind}; jax {jax.__version__}, "
        f"matmul precision {flags.FLAGS.matmul_precision}; GEMM peak: "
        f"{peak / 1e9:.0f} GFLOP/s; {torch_note}")
  print("| cell | layout | shape | mode | implementation | ms/call | "
        "% GEMM peak | ours / this | paired | XLA memory MB |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for cell_name in flags.FLAGS.cells:
    for layout in flags.FLAGS.layouts:
      for shape_name in flags.FLAGS.shapes:
        shape = SHAPES[shape_name]
        for mode in flags.FLAGS.modes:
          # The best GEMM rate so far: one measurement can land in a burst of
          # load from elsewhere on a shared machine.
          peak = max(peak, gemm_peak_flops())
          impls = {"ours": ours(cell_name, shape, mode, layout)}
          if (cudnn.gpu_backend()
              and cells.get_cell(cell_name).cudnn is not None):
            impls["ours cudnn"] = ours(cell_name, shape, mode, layout,
                                       implementation="cudnn")
          flax_names = (["lstm", "lstm_optimized"] if cell_name == "lstm"
                        else ["gru"])
          for flax_name in flax_names:
            impls[f"flax {flax_name}"] = flax_rnn(flax_name, shape, mode, layout)
          if have_torch:
            impls["torch"] = torch_rnn(cell_name, shape, mode, layout)
          samples = time_interleaved({k: v.run for k, v in impls.items()},
                                     flags.FLAGS.rounds, flags.FLAGS.calls,
                                     flags.FLAGS.warmup_calls)
          medians = {k: statistics.median(v) for k, v in samples.items()}
          flops = model_flops(cell_name, shape, mode, layout)
          for name, seconds in medians.items():
            memory = impls[name].memory_bytes
            memory = "" if memory is None else f"{memory / 2**20:.1f}"
            print(f"| {cell_name} | {layout} | {shape_name} | {mode} | {name} | "
                  f"{seconds * 1e3:.2f} | {100 * flops / seconds / peak:.0f}% | "
                  f"{seconds / medians['ours']:.2f}x | "
                  f"{paired_ratio(samples['ours'], samples[name]):.2f}x | "
                  f"{memory} |", flush=True)
  print(f"GEMM peak: {peak / 1e9:.0f} GFLOP/s, the best of measurements before "
        "each group of rows (each row's % uses the best until then)")


if __name__ == "__main__":
  app.run(main)
