"""The benchmark's own arithmetic: paired ratios and XLA's planned memory."""

import jax
import jax.numpy as jnp

from benchmarks import rnn_speed, timing


def test_paired_ratio_is_the_median_of_per_round_ratios():
  # Per round the peer takes 1x, 3x and 1.25x our time: the paired ratio is
  # 1.25, where the ratio of the medians (3 / 1) would say 3.
  ours = [1.0, 1.0, 4.0]
  peer = [1.0, 3.0, 5.0]
  assert timing.paired_ratio(ours, peer) == 1.25
  assert timing.paired_ratio(peer, ours) == 0.8


def test_compiled_impl_runs_and_reports_working_memory():
  x = jnp.ones((256, 256), jnp.float32)
  impl = rnn_speed._compiled(jax.jit(lambda a: jnp.tanh(a @ a) @ a), x)
  impl.run()
  # At least the [256, 256] float32 output (256 KiB) is planned.
  assert impl.memory_bytes is not None and impl.memory_bytes >= 256 * 256 * 4


def test_interleaved_timing_makes_untimed_warmup_calls_first():
  # A fake clock that advances only inside calls, by the call's cost: cold
  # calls (the first after another implementation's) cost 10, warm ones 1.
  now = [0.0]
  last = [None]
  calls = {"a": 0, "b": 0}

  def make(name):
    def run():
      now[0] += 1.0 if last[0] == name else 10.0
      last[0] = name
      calls[name] += 1
    return run

  impls = {"a": make("a"), "b": make("b")}
  warm = timing.time_interleaved(impls, rounds=3, calls=2, warmup_calls=1,
                                    clock=lambda: now[0])
  assert warm == {"a": [1.0] * 3, "b": [1.0] * 3}
  assert calls == {"a": 2 + 3 * 3, "b": 2 + 3 * 3}  # 2 warm-ups + 3 per round
  cold = timing.time_interleaved(impls, rounds=3, calls=2, warmup_calls=0,
                                    clock=lambda: now[0])
  assert cold == {"a": [5.5] * 3, "b": [5.5] * 3}  # (10 + 1) / 2


def test_step_matmul_layouts_compute_the_same_recurrence():
  from benchmarks import step_matmul  # pylint: disable=g-import-not-at-top
  w = jax.random.normal(jax.random.PRNGKey(0), (6, 4 * 6)) * 0.3
  batch_major = step_matmul.scan_fn("batch-major", 3, 6, 5)(w)
  feature_major = step_matmul.scan_fn("feature-major", 3, 6, 5)(w)
  assert batch_major.shape == (3, 6) and feature_major.shape == (6, 3)
  assert float(jnp.max(jnp.abs(batch_major - feature_major.T))) < 1e-6


def test_grad_matmuls_whole_and_split_forms_agree():
  """Both forms of the weight-gradient matmuls give the same gradients, and
  the whole form against einsums written out here."""
  from benchmarks import grad_matmuls  # pylint: disable=g-import-not-at-top
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
  from benchmarks import thunk_profile  # pylint: disable=g-import-not-at-top
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
  from benchmarks import thunk_profile  # pylint: disable=g-import-not-at-top
  text = ('  %ynn_fusion.2 = f32[64,512]{1,0} fusion(%a, %b), kind=kCustom, '
          'metadata={op_name="jit(loss)/while/body/dot_general" '
          'stack_frame_id=87}\n'
          '  ROOT %copy.4 = f32[8]{0} copy(%c)\n')
  assert thunk_profile.hlo_sources(text) == {
      "ynn_fusion.2": ("f32[64,512]{1,0}", "jit(loss)/while/body/dot_general"),
      "copy.4": ("f32[8]{0}", "")}


def test_thunk_profile_traces_a_real_scan():
  from benchmarks import thunk_profile  # pylint: disable=g-import-not-at-top
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
  from benchmarks import thunk_profile  # pylint: disable=g-import-not-at-top
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
