"""Data parallelism: 4 devices give the 1-device run; resume across device
counts; two processes give the one-process run (devices.py).

The runs happen in subprocesses (tests/multi_device_runs.py) whose CPU
backend has 4 virtual devices, or 2 per process for the two-process run.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests import multi_device_runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(devices: int) -> dict:
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  env.pop("JAX_COORDINATOR_ADDRESS", None)
  return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  directory = tmp_path_factory.mktemp("multi_device")
  done = subprocess.run([sys.executable, "-m", "tests.multi_device_runs",
                         str(directory)], cwd=ROOT, env=_env(4),
                        capture_output=True, text=True, timeout=900)
  assert done.returncode == 0, done.stderr[-3000:]
  return directory


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def assert_same_metrics(got, expected, rtol=1e-5, atol=1e-6):
  assert [(r["step"], r["split"]) for r in got] == [
      (r["step"], r["split"]) for r in expected]
  for a, b in zip(got, expected):
    assert a.keys() == b.keys(), (a, b)
    for key in a:
      if isinstance(b[key], float):
        np.testing.assert_allclose(a[key], b[key], rtol=rtol, atol=atol,
                                   err_msg=f"{a['step']} {a['split']} {key}")
      else:
        assert a[key] == b[key], (key, a, b)


# One step on 4 devices gives the 1-device params to float rounding; over
# hundreds of steps the devices' other order of summation grows into
# relative differences of up to ~1e-3 in the metrics.
CURVE_RTOL = 5e-3


def test_one_step_on_four_devices_is_the_one_device_step(runs):
  one_step = json.loads((runs / "facts.json").read_text())["one_step"]
  assert one_step["adding"] < 1e-6 and one_step["ptb"] < 1e-6, one_step


def test_four_devices_give_the_one_device_run(runs):
  one, four = read_metrics(runs / "adding_1"), read_metrics(runs / "adding_4")
  assert len(one) == 200 // 50 * 3 and one[-1]["step"] == 200
  assert_same_metrics(four, one, rtol=CURVE_RTOL)
  summary = json.loads((runs / "adding_4" / "summary.json").read_text())
  assert summary["num_devices"] == 4 and summary["num_processes"] == 1
  assert "num_devices" not in json.loads(
      (runs / "adding_1" / "summary.json").read_text())


def test_replicas_split_their_batches_over_four_devices(runs):
  one, four = read_metrics(runs / "replicas_1"), read_metrics(runs / "replicas_4")
  assert {r["replica"] for r in one} == {0, 1}
  assert_same_metrics(four, one, rtol=CURVE_RTOL)


def test_ptb_small_model_with_carried_state_on_four_devices(runs):
  one, four = read_metrics(runs / "ptb_1"), read_metrics(runs / "ptb_4")
  assert one[-1]["step"] == 210 and len(one) == 7 * 3
  assert_same_metrics(four, one, rtol=CURVE_RTOL)
  facts = json.loads((runs / "facts.json").read_text())
  assert facts["carry_rows"] == [1, 1, 1, 1]  # the carry is split like the batch


def test_batches_are_split_and_state_replicated(runs):
  layouts = json.loads((runs / "facts.json").read_text())["layouts"]
  assert layouts == {
      "num_devices": 4, "inputs_devices": 4, "inputs_replicated": False,
      "inputs_shard_rows": [2, 2, 2, 2], "params_replicated": True,
      "stepped_params_replicated": True}


@pytest.mark.parametrize("devices", [1, 2])
def test_a_four_device_checkpoint_resumes_on_fewer(runs, devices):
  resumed = read_metrics(runs / f"resume_on_{devices}")
  assert_same_metrics(resumed, read_metrics(runs / "adding_4"), rtol=CURVE_RTOL)


def test_device_count_errors_are_clear(runs):
  facts = json.loads((runs / "facts.json").read_text())
  assert facts["indivisible"].startswith(
      "batch_size: 6 does not divide by the 4 devices in use")
  assert "--config.num_devices" in facts["indivisible"]
  assert facts["too_many"].startswith("num_devices: 8 asked, 4 visible")
  assert not (runs / "indivisible").exists()


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _two_processes(workdir, *flags):
  """Runs the adding launcher as two processes of 2 devices each, joined on
  127.0.0.1 -> their (stdout, stderr)."""
  command = [sys.executable, "-m", "experiments.adding", f"--workdir={workdir}",
             "--multihost", f"--coordinator_address=127.0.0.1:{_free_port()}",
             "--num_processes=2", *multi_device_runs.ADDING_FLAGS, *flags]
  processes = [subprocess.Popen(command + [f"--process_id={i}"], cwd=ROOT,
                                env=_env(2), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
               for i in range(2)]
  outputs = [p.communicate(timeout=600) for p in processes]
  for p, (_, err) in zip(processes, outputs):
    assert p.returncode == 0, err[-3000:]
  return outputs


def test_two_processes_train_together_like_one(runs, tmp_path):
  workdir = tmp_path / "two_processes"
  # Half the run, then a rerun that restores the checkpoint in both processes.
  _two_processes(workdir, "--config.num_train_steps=100")
  outputs = _two_processes(workdir)
  assert "Resumed from checkpoint 100" in outputs[0][0]
  # Process 0 alone wrote the metrics, once; they are the one-device run's.
  assert_same_metrics(read_metrics(workdir), read_metrics(runs / "adding_1"),
                      rtol=CURVE_RTOL)
  summaries = [json.loads(out[out.index("{"):]) for out, _ in outputs]
  assert [s["num_processes"] for s in summaries] == [2, 2]
  assert [s["num_devices"] for s in summaries] == [4, 4]
  assert "step 200 test" in outputs[0][0] and "step 200" not in outputs[1][0]
