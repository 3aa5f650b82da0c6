"""Where a layer's time goes: XLA's per-thunk CPU profile, in phases.

  python -m tools.perf.thunk_profile [--profile_cell=gru] \
      [--profile_shape=big] [--profile_mode=train] [--profile_calls=3]

Traces a few calls of this project's layer (`models.unroll.rnn`, built as in
rnn_speed) with `jax.profiler` and reads the events that XLA's CPU runtime
records for each thunk (one compiled kernel, dot or copy; named after its
HLO instruction). Prints, as medians over the calls:

- the phases of a call: before the first loop, each loop (the thunks that
  run more than once per call, grouped by overlapping time spans: the
  forward scan, the backward scan), between loops, and after the last loop;
- the thunks with the most time per call, with their runs per call, time
  per run, GFLOP/s for matmuls (from the dot shapes in the compiled HLO,
  over the median time per run), result shape and where in the program
  they come from (the HLO
  op_name: `jvp()` is the forward pass of a training step, `transpose(...)`
  the backward pass, `while/body` a loop).

Thunks on different threads may run at the same time (XLA's CPU runtime runs
independent thunks side by side), so thunk times can add up to more than a
phase's wall time. The profiler slows the calls down a little; time calls
with rnn_speed.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import json
import os
import re
import statistics
import tempfile
import time

import jax
from absl import app, flags

from benchmarks import rnn_speed

flags.DEFINE_enum("profile_cell", "gru", ["lstm", "gru"], "Cell.")
flags.DEFINE_enum("profile_shape", "big", sorted(rnn_speed.SHAPES), "Shape.")
flags.DEFINE_enum("profile_mode", "train", ["train", "forward"], "Mode.")
flags.DEFINE_integer("profile_calls", 3, "Traced calls (after 2 untimed).")
flags.DEFINE_integer("profile_top", 20, "Thunks to list.")

# Thunk events are named after HLO instructions; the runtime's own events
# (ThunkExecutor::Execute, Python frames, ...) have other names.
_THUNK_NAME = re.compile(r"^[A-Za-z_][\w.\-]*$")
_CONTROL_FLOW = ("while", "conditional", "call")


@dataclasses.dataclass
class Event:
  name: str
  start: float  # microseconds
  duration: float


@dataclasses.dataclass
class Phase:
  name: str
  ms: float
  thunks: list[str]


def thunk_events(trace_events: list[dict]) -> tuple[list[float], list[Event]]:
  """(call start times, thunk events) from a perfetto trace's events.

  Calls start at the `PjitFunction(...)` events of the Python thread.
  Control-flow thunks (while, conditional, call) are left out: their bodies'
  thunks are counted instead.
  """
  starts, events = [], []
  for e in trace_events:
    if e.get("ph") != "X":
      continue
    name = e["name"]
    if name.startswith("PjitFunction("):
      starts.append(float(e["ts"]))
    elif _THUNK_NAME.match(name) and not name.startswith(_CONTROL_FLOW):
      events.append(Event(name, float(e["ts"]), float(e.get("dur", 0.0))))
  # Nested jit wrappers record one PjitFunction event each: keep the first of
  # events that start within 1 ms of each other.
  calls = []
  for s in sorted(starts):
    if not calls or s - calls[-1] > 1000.0:
      calls.append(s)
  return calls, sorted(events, key=lambda e: e.start)


def phases(events: list[Event], call_start: float) -> list[Phase]:
  """One call's phases: before the first loop, each loop, between loops,
  after the last loop. A loop: thunks that run more than once in the call,
  grouped by overlapping [first start, last end] spans."""
  if not events:
    return []
  runs: dict[str, list[Event]] = {}
  for e in events:
    runs.setdefault(e.name, []).append(e)
  spans = sorted((r[0].start, max(x.start + x.duration for x in r), name)
                 for name, r in runs.items() if len(r) > 1)
  busy = {name: sum(x.duration for x in r) for name, r in runs.items()}
  loops: list[list] = []  # [start, end, names]
  for start, end, name in spans:
    if loops and start < loops[-1][1]:
      loops[-1][1] = max(loops[-1][1], end)
      loops[-1][2].append(name)
    else:
      loops.append([start, end, [name]])
  call_end = max(e.start + e.duration for e in events)
  result, cursor = [], call_start
  for k, (start, end, names) in enumerate(loops):
    gap = "before the first loop" if k == 0 else f"between loops {k} and {k + 1}"
    result.append(Phase(gap, (start - cursor) / 1e3, []))
    steps = len(runs[names[0]])
    result.append(Phase(f"loop {k + 1} ({steps} runs of its thunks)",
                        (end - start) / 1e3,
                        sorted(names, key=lambda n: -busy[n])))
    cursor = end
  result.append(Phase("after the last loop" if loops else "whole call",
                      (call_end - cursor) / 1e3, []))
  return result


def split_calls(calls: list[float], events: list[Event]) -> list[list[Event]]:
  """Each call's thunk events (those starting before the next call)."""
  bounds = calls[1:] + [float("inf")]
  return [[e for e in events if start <= e.start < end]
          for start, end in zip(calls, bounds)]


# An HLO instruction line: its name and result shape (with layout).
_INSTRUCTION = r"^\s*(?:ROOT )?%([\w.\-]+) = (\S+) "


def hlo_sources(hlo_text: str) -> dict[str, tuple[str, str]]:
  """instruction name -> (result shape, op_name) from compiled HLO text."""
  sources = {}
  instruction = re.compile(_INSTRUCTION)
  op_name = re.compile(r'op_name="([^"]*)"')
  for line in hlo_text.splitlines():
    m = instruction.match(line)
    if m:
      source = op_name.search(line)
      sources[m.group(1)] = (m.group(2), source.group(1) if source else "")
  return sources


def _dims(shape: str) -> list[int]:
  """[64, 512] from 'f32[64,512]{1,0}'."""
  inside = shape[shape.index("[") + 1:shape.index("]")]
  return [int(d) for d in inside.split(",") if d]


def dot_flops(hlo_text: str) -> dict[str, float]:
  """instruction name -> matmul FLOPs, for dots and for fusions that call
  computations with dots (2 * output elements * contracted size)."""
  instruction = re.compile(_INSTRUCTION + r"(\w[\w-]*)\(([^)]*)\)")
  header = re.compile(r"^(?:ENTRY )?%([\w.\-]+) \(")
  shapes, flops, per_computation, calls = {}, {}, {}, {}
  computation = ""
  for line in hlo_text.splitlines():
    h = header.match(line)
    if h:
      computation = h.group(1)
      continue
    m = instruction.match(line)
    if not m:
      continue
    name, shape, op, operands = m.groups()
    shapes[name] = _dims(shape)
    if op == "dot":
      lhs = shapes.get(operands.split(",")[0].strip().lstrip("%"), [])
      contracting = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", line)
      size = 1
      for d in (contracting.group(1).split(",") if contracting else []):
        if d and int(d) < len(lhs):
          size *= lhs[int(d)]
      flops[name] = 2.0 * size
      for d in shapes[name]:
        flops[name] *= d
      per_computation[computation] = (per_computation.get(computation, 0.0)
                                      + flops[name])
    called = re.search(r"calls=%([\w.\-]+)", line)
    if called:
      calls[name] = called.group(1)
  for name, callee in calls.items():
    if callee in per_computation:
      flops[name] = per_computation[callee]
  return flops


def _trace(run, calls: int) -> list[dict]:
  with tempfile.TemporaryDirectory() as directory:
    with jax.profiler.trace(directory, create_perfetto_trace=True):
      for _ in range(calls):
        run()
        time.sleep(0.02)  # separates the calls in the trace
    path = glob.glob(os.path.join(directory, "**", "perfetto_trace.json.gz"),
                     recursive=True)[0]
    with gzip.open(path) as f:
      trace = json.load(f)
  return trace["traceEvents"] if isinstance(trace, dict) else trace


def main(argv):
  del argv
  f = flags.FLAGS
  shape = rnn_speed.SHAPES[f.profile_shape]
  impl = rnn_speed.ours(f.profile_cell, shape, f.profile_mode)
  for _ in range(2):
    impl.run()
  calls, events = thunk_events(_trace(impl.run, f.profile_calls))
  per_call = split_calls(calls, events)
  if not calls or not any(per_call):
    raise SystemExit("no calls or no thunk events in the trace: this reads "
                     "the events of XLA's CPU runtime (JAX_PLATFORMS=cpu)")
  hlo_text = impl.compiled.as_text() if impl.compiled else ""
  sources = hlo_sources(hlo_text)
  walls = [(max(e.start + e.duration for e in evs) - start) / 1e3
           for start, evs in zip(calls, per_call) if evs]
  print(f"{f.profile_cell} {f.profile_shape} {f.profile_mode} (B, T, I, H = "
        f"{shape}); jax {jax.__version__} on {jax.default_backend()}; "
        f"{len(walls)} traced calls: {statistics.median(walls):.1f} ms per "
        "call (median)")
  print("| phase | ms | share | thunks |\n|---|---|---|---|")
  all_phases = [phases(evs, start) for start, evs in zip(calls, per_call)]
  for k, phase in enumerate(all_phases[0]):
    ms = statistics.median(p[k].ms for p in all_phases if len(p) > k)
    names = ", ".join(phase.thunks[:6]) + (" ..." if len(phase.thunks) > 6
                                           else "")
    print(f"| {phase.name} | {ms:.1f} | {ms / statistics.median(walls):.0%} | "
          f"{names} |")
  totals: dict[str, list[float]] = {}
  for e in events:
    totals.setdefault(e.name, []).append(e.duration)
  ranked = sorted(totals.items(), key=lambda kv: -sum(kv[1]))[:f.profile_top]
  flops = dot_flops(hlo_text)
  print("\n| thunk | ms per call | runs per call | us per run | GFLOP/s | "
        "result | op_name |\n|---|---|---|---|---|---|---|")
  for name, durations in ranked:
    runs = len(durations) / len(per_call)
    shape_text, op_name = sources.get(name, ("", ""))
    per_run = statistics.median(durations)
    rate = (f"{flops[name] / per_run / 1e3:.0f}" if name in flops and per_run
            else "")
    print(f"| {name} | {sum(durations) / len(per_call) / 1e3:.1f} | "
          f"{runs:g} | {per_run:.0f} | {rate} | {shape_text} | "
          f"{op_name[-60:]} |")


if __name__ == "__main__":
  app.run(main)
