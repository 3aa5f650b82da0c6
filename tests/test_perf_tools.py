"""The investigation scripts of tools/perf: what they compute, not how fast."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from tools.perf import grad_matmuls, step_matmul, thunk_profile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_step_matmul_layouts_compute_the_same_recurrence():
  w = jax.random.normal(jax.random.PRNGKey(0), (6, 4 * 6)) * 0.3
  batch_major = step_matmul.scan_fn("batch-major", 3, 6, 5)(w)
  feature_major = step_matmul.scan_fn("feature-major", 3, 6, 5)(w)
  assert batch_major.shape == (3, 6) and feature_major.shape == (6, 3)
  assert float(jnp.max(jnp.abs(batch_major - feature_major.T))) < 1e-6


def test_grad_matmuls_whole_and_split_forms_agree():
  """Both forms of the weight-gradient matmuls give the same gradients, and
  the whole form against einsums written out here."""
  shape = (3, 5, 4, 6)  # B, T, I, H
  for cell in ("lstm", "gru"):
    (whole_fn, whole_args), split_args = grad_matmuls.make_inputs(cell, shape)
    whole = whole_fn(*whole_args)
    split = grad_matmuls._split(*split_args)  # pylint: disable=protected-access
    for a, b in zip(whole, split):
      assert a.shape == b.shape
      assert float(jnp.max(jnp.abs(a - b))) < 1e-5, cell
    h, xs, w_ih, gh_parts, gx_parts = split_args
    d_gh, d_gx = (jnp.concatenate(p, -1) for p in (gh_parts, gx_parts))
    expected = (jnp.einsum("tbh,tbg->hg", h, d_gh),
                jnp.einsum("tbi,tbg->ig", xs, d_gx), jnp.sum(d_gx, (0, 1)),
                jnp.einsum("tbg,ig->tbi", d_gx, w_ih))
    for a, b in zip(whole, expected):
      assert float(jnp.max(jnp.abs(a - b))) < 1e-4, cell


def test_thunk_profile_splits_a_call_into_phases():
  x = lambda name, ts, dur: {"ph": "X", "name": name, "ts": ts, "dur": dur}
  trace = [x("PjitFunction(loss)", 0, 50), x("PjitFunction(loss)", 5, 40),
           x("ThunkExecutor::Execute", 90, 9000), x("$api.py:1 block", 0, 9),
           x("while.3", 990, 3000), {"ph": "i", "name": "marker", "ts": 1},
           x("a", 100, 900)]
  trace += [x("s1", t, 500) for t in (1000, 2000, 3000)]   # loop 1
  trace += [x("s2", t, 400) for t in (1500, 2500, 3500)]   # loop 1
  trace += [x("b1", t, 100) for t in (4000, 4200)]         # loop 2
  trace += [x("p", 5000, 1000), x("PjitFunction(loss)", 20000, 50),
            x("a", 20100, 300)]
  calls, events = thunk_profile.thunk_events(trace)
  assert calls == [0.0, 20000.0]  # the nested jit wrapper's event is merged
  assert {e.name for e in events} == {"a", "s1", "s2", "b1", "p"}
  first, second = thunk_profile.split_calls(calls, events)
  assert len(first) == 10 and [e.name for e in second] == ["a"]
  got = [(p.name, round(p.ms, 3), p.thunks)
         for p in thunk_profile.phases(first, calls[0])]
  assert got == [("before the first loop", 1.0, []),
                 ("loop 1 (3 runs of its thunks)", 2.9, ["s1", "s2"]),
                 ("between loops 1 and 2", 0.1, []),
                 ("loop 2 (2 runs of its thunks)", 0.3, ["b1"]),
                 ("after the last loop", 1.7, [])]
  assert [p.name for p in thunk_profile.phases(second, calls[1])] == [
      "whole call"]


def test_thunk_profile_reads_shapes_and_sources_from_hlo_text():
  text = ('  %ynn_fusion.2 = f32[64,512]{1,0} fusion(%a, %b), kind=kCustom, '
          'metadata={op_name="jit(loss)/while/body/dot_general" '
          'stack_frame_id=87}\n'
          '  ROOT %copy.4 = f32[8]{0} copy(%c)\n')
  assert thunk_profile.hlo_sources(text) == {
      "ynn_fusion.2": ("f32[64,512]{1,0}", "jit(loss)/while/body/dot_general"),
      "copy.4": ("f32[8]{0}", "")}


def test_thunk_profile_traces_a_real_scan():
  w = jnp.full((16, 16), 0.1)
  fn = jax.jit(lambda w: jax.lax.scan(lambda h, _: (jnp.tanh(h @ w), None),
                                      jnp.ones((4, 16)), None, length=7)[0])
  jax.block_until_ready(fn(w))
  calls, events = thunk_profile.thunk_events(
      thunk_profile._trace(lambda: jax.block_until_ready(fn(w)), 2))  # pylint: disable=protected-access
  assert len(calls) == 2
  per_call = thunk_profile.split_calls(calls, events)
  loops = [p for p in thunk_profile.phases(per_call[0], calls[0])
           if p.name.startswith("loop")]
  assert [p.name for p in loops] == ["loop 1 (7 runs of its thunks)"]


def test_thunk_profile_counts_matmul_flops_of_dots_and_fusions():
  text = """%fused_computation.2 (param_0.2: f32[64,1536], param_1.2: f32[1536,512]) -> f32[64,512] {
  %param_0.2 = f32[64,1536]{1,0} parameter(0)
  %param_1.2 = f32[1536,512]{1,0} parameter(1)
  ROOT %dot_general.18 = f32[64,512]{1,0} dot(%param_0.2, %param_1.2), lhs_contracting_dims={1}, rhs_contracting_dims={0}, metadata={op_name="a/dot_general"}
}

ENTRY %main.3 (a: f32[8,4,6], b: f32[8,6,5]) -> f32[64,512] {
  %a = f32[8,4,6]{2,1,0} parameter(0)
  %b = f32[8,6,5]{2,1,0} parameter(1)
  %bmm = f32[8,4,5]{2,1,0} dot(%a, %b), lhs_batch_dims={0}, lhs_contracting_dims={2}, rhs_batch_dims={0}, rhs_contracting_dims={1}
  %x = f32[64,1536]{1,0} parameter(2)
  %w = f32[1536,512]{1,0} parameter(3)
  ROOT %ynn_fusion.2 = f32[64,512]{1,0} fusion(%x, %w), kind=kCustom, calls=%fused_computation.2
}
"""
  flops = thunk_profile.dot_flops(text)
  assert flops["ynn_fusion.2"] == 2 * 64 * 512 * 1536
  assert flops["bmm"] == 2 * 8 * 4 * 5 * 6
  assert "a" not in flops and "x" not in flops


# Each script defines its own absl flags (some of the same name), so each is
# imported in a process of its own.
@pytest.mark.parametrize("script", ["cold_call", "fused_ab", "grad_matmuls",
                                    "page_faults", "step_matmul",
                                    "thunk_profile"])
def test_every_script_imports_from_its_package(script):
  _run_python(f"import tools.perf.{script}")


def test_fused_ab_loads_a_revision_and_runs_both_versions():
  """A revision's models/fused.py, loaded beside the working tree's, gives
  the same gradients at a tiny shape."""
  _run_python("""
import jax, jax.numpy as jnp
from models import fused
from tools.perf import fused_ab
base = fused_ab.load_fused("HEAD")
for cell in ("lstm", "gru"):
  (fn_a, args), (fn_b, _) = (fused_ab.layer_fn(m, cell, (2, 3, 4, 5), "train")
                             for m in (base, fused))
  for a, b in zip(*(jax.tree_util.tree_leaves(f(*args)) for f in (fn_a, fn_b))):
    assert float(jnp.max(jnp.abs(a - b))) < 1e-5, cell
""")


def _run_python(code: str) -> None:
  done = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                        capture_output=True, text=True, check=False,
                        env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert done.returncode == 0, done.stderr[-3000:]
