"""Replicas in one program: replica r of a K-replica run is the single run
with seed + r (and its swept value), metric for metric; stopping, best
checkpoints, resume after a kill, and the errors of bad replica settings."""

import json
import os
import signal

import jax
import numpy as np
import pytest

import replicas
import tasks as tasks_lib
import train
from experiments.configs import rules
from tests import test_faults
from tests import test_text_tasks

RTOL = 2e-4  # vmapped and single programs sum in other orders


def rows_of(workdir, replica=None):
  """metrics.jsonl rows (of one replica, without its label)."""
  rows = test_faults.read_metrics(workdir)
  if replica is None:
    return rows
  return [{k: v for k, v in row.items() if k not in ("replica", "seed")}
          for row in rows if row.get("replica") == replica]


def assert_rows_close(got, expected, rtol=RTOL):
  """Rows equal but for float metrics within rtol (0: exactly equal)."""
  if rtol == 0:
    assert got == expected
    return
  assert [(r["step"], r["split"]) for r in got] == [
      (r["step"], r["split"]) for r in expected]
  for g, e in zip(got, expected):
    assert g.keys() == e.keys(), (g, e)
    for key, value in e.items():
      if isinstance(value, float):
        assert g[key] == pytest.approx(value, rel=rtol, abs=1e-6), (key, g, e)
      else:
        assert g[key] == value, (key, g, e)


# 'unrolled' runs each replica's own program: the single run's arithmetic,
# bit for bit; 'vmap' batches them, summing in another order.
@pytest.mark.parametrize("program, rtol", [("unrolled", 0), ("vmap", RTOL)])
def test_replica_two_of_four_is_the_run_with_seed_plus_two(tmp_path, program, rtol):
  flags = test_faults.FLAGS
  run = test_faults.launch(tmp_path / "four", *flags, "--config.seed=3",
                           "--config.num_replicas=4",
                           f"--config.replica_program={program}")
  assert run.returncode == 0, run.stderr[-2000:]
  single = test_faults.launch(tmp_path / "one", *flags, "--config.seed=5")
  assert single.returncode == 0, single.stderr[-2000:]
  replica_rows = rows_of(tmp_path / "four", replica=2)
  assert_rows_close(replica_rows, rows_of(tmp_path / "one"), rtol)
  assert {r["seed"] for r in rows_of(tmp_path / "four") if r["replica"] == 2} == {5}
  summary = json.loads((tmp_path / "four" / "summary.json").read_text())
  alone = json.loads((tmp_path / "one" / "summary.json").read_text())
  mine = summary["replicas"][2]
  assert mine["seed"] == 5 and mine["examples_seen"] == alone["examples_seen"]
  assert mine["metrics"]["test"]["mse"] == pytest.approx(
      alone["metrics"]["test"]["mse"], rel=rtol)
  assert mine["best"]["step"] == alone["best"]["step"]
  # The mean and sd are the replicas' own.
  mses = [r["metrics"]["valid"]["mse"] for r in summary["replicas"]]
  assert summary["metrics"]["valid"]["mse"] == pytest.approx(np.mean(mses))
  assert summary["metrics_sd"]["valid"]["mse"] == pytest.approx(np.std(mses, ddof=1))
  assert summary["best"]["value"] == pytest.approx(
      np.mean([r["best"]["value"] for r in summary["replicas"]]))
  # The best checkpoint holds each replica's best state; load_trained picks one.
  _, _, best_params, best_step = train.load_trained(
      str(tmp_path / "four"), best=True, replica=2)
  _, _, alone_params, alone_step = train.load_trained(str(tmp_path / "one"),
                                                      best=True)
  assert best_step >= alone_step
  for got, expected in zip(jax.tree_util.tree_leaves(best_params),
                           jax.tree_util.tree_leaves(alone_params)):
    np.testing.assert_allclose(got, expected, rtol=rtol and 1e-3,
                               atol=rtol and 1e-5)


def test_swept_learning_rate_replica_is_the_run_with_that_rate(tmp_path):
  flags = [*(f for f in test_faults.FLAGS if "learning_rate" not in f),
           "--config.lr_schedule=constant"]
  run = test_faults.launch(tmp_path / "two", *flags, "--config.num_replicas=2",
                           "--config.replica_program=vmap",
                           "--config.replica_sweep=learning_rate=0.01,0.1")
  assert run.returncode == 0, run.stderr[-2000:]
  single = test_faults.launch(tmp_path / "one", *flags, "--config.seed=1",
                              "--config.learning_rate=0.1")
  assert single.returncode == 0, single.stderr[-2000:]
  rows = [r for r in test_faults.read_metrics(tmp_path / "two") if r["replica"] == 1]
  # Eval rows carry the swept value as a label; train rows the scheduled rate.
  assert {r["learning_rate"] for r in rows} == {0.1}
  assert_rows_close(
      [{k: v for k, v in r.items() if k not in ("replica", "seed") and (
          k != "learning_rate" or r["split"] == "train")} for r in rows],
      rows_of(tmp_path / "one"))
  summary = json.loads((tmp_path / "two" / "summary.json").read_text())
  assert [r["learning_rate"] for r in summary["replicas"]] == [0.01, 0.1]


def small_config(**overrides):
  config = test_faults.tiny_config(**overrides)
  rules.validate(config)
  return config


def patched_solved(monkeypatch, threshold):
  """Tasks whose 'solved' is valid MSE < threshold (seeds then differ)."""
  build = tasks_lib.build

  def build_with_threshold(config):
    task = build(config)
    return task.__class__(**{**task.__dict__, "solved": lambda m: m["mse"] < threshold})

  monkeypatch.setattr(train.tasks_lib, "build", build_with_threshold)


def test_a_solved_replica_stops_while_the_others_train_on(tmp_path, monkeypatch):
  config = small_config(num_replicas=3, num_train_steps=30, stop_when_solved=True)
  monkeypatch.setattr(train.tasks_lib, "build", tasks_lib.build)
  first = train.train_and_evaluate(small_config(
      num_replicas=3, num_train_steps=10, stop_when_solved=False),
      str(tmp_path / "probe"))
  at_10 = sorted(r["metrics"]["valid"]["mse"] for r in first["replicas"])
  assert at_10[0] < at_10[-1]
  threshold = (at_10[0] + at_10[1]) / 2  # exactly one replica solves at step 10
  patched_solved(monkeypatch, threshold)
  summary = train.train_and_evaluate(config, str(tmp_path / "three"))
  solved_now = [r for r in summary["replicas"] if r["solved_step"] == 10]
  assert len(solved_now) == 1
  quick = solved_now[0]["replica"]
  rows = test_faults.read_metrics(tmp_path / "three")
  assert max(r["step"] for r in rows if r["replica"] == quick) == 10
  assert max(r["step"] for r in rows if r["replica"] != quick) == 30
  single = train.train_and_evaluate(
      replicas.replica_config(config, quick), str(tmp_path / "single"))
  assert single["step"] == 10 and single["solved"]
  assert solved_now[0]["examples_seen"] == single["examples_seen"]
  assert solved_now[0]["metrics"]["test"]["mse"] == pytest.approx(
      single["metrics"]["test"]["mse"], rel=RTOL)
  assert not summary["solved"] or all(r["solved"] for r in summary["replicas"])


# Replicas' batches of other length buckets are zero-padded to the longest:
# exact without dropout; dropout masks are drawn for the padded shape, so
# with dropout the replica equals its single run only where shapes agree.
@pytest.mark.parametrize("dropout_rate, bucket_boundaries", [(0.0, "2"), (0.5, "3")])
def test_sentiment_replica_is_the_single_run(test_text_fixture, tmp_path,
                                             dropout_rate, bucket_boundaries):
  config = test_text_tasks.small_sentiment_config(
      num_train_steps=6, eval_every_steps=2, log_every_steps=2,
      progress_bar=False, num_replicas=3, dropout_rate=dropout_rate)
  config.bucket_boundaries = bucket_boundaries
  summary = train.train_and_evaluate(config, str(tmp_path / "three"))
  single = train.train_and_evaluate(replicas.replica_config(config, 1),
                                    str(tmp_path / "one"))
  stats = json.loads((tmp_path / "one" / "data_stats.json").read_text())
  assert len(stats["bucket_steps"]) == (2 if bucket_boundaries == "2" else 1)
  assert_rows_close(rows_of(tmp_path / "three", replica=1),
                    rows_of(tmp_path / "one"))
  assert summary["replicas"][1]["metrics"]["test"]["accuracy"] == pytest.approx(
      single["metrics"]["test"]["accuracy"])


@pytest.fixture
def test_text_fixture(monkeypatch):
  monkeypatch.setattr(test_text_tasks.sentiment.sentiment_data, "read_split",
                      test_text_tasks.read_fake_reviews)


def test_replicated_run_killed_between_checkpoints_resumes_exactly(tmp_path):
  flags = [*test_faults.FLAGS, "--config.num_replicas=3"]
  straight = test_faults.launch(tmp_path / "straight", *flags)
  assert straight.returncode == 0, straight.stderr[-2000:]
  expected = test_faults.read_metrics(tmp_path / "straight")
  expected_summary = json.loads((tmp_path / "straight" / "summary.json").read_text())
  for point in ("train_step:7", "checkpoint_saved:3"):
    workdir = tmp_path / point.replace(":", "_")
    killed = test_faults.launch(workdir, *flags, fault_point=point)
    assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
    rerun = test_faults.launch(workdir, *flags)
    assert rerun.returncode == 0, (point, rerun.stderr[-2000:])
    assert test_faults.read_metrics(workdir) == expected, point
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["best"] == expected_summary["best"], point
    assert summary["replicas"] == expected_summary["replicas"], point


@pytest.mark.parametrize("flag, message", [
    ("--config.replica_sweep=hidden_size=8,16", "cannot vary across the replicas"),
    ("--config.replica_sweep=learning_rate=0.1", "1 values for num_replicas=2"),
    ("--config.replica_sweep=learning_rate=0.1,x", "'x' is not a number"),
    ("--config.replica_sweep=learning_rate=0.1,-1", "expected a finite number > 0"),
    ("--config.replica_sweep=learning_rate", "expected 'KEY=V0,V1,...'"),
    ("--config.replica_sweep=grad_clip_norm=0,1", "must be > 0"),
])
def test_bad_replica_sweeps_are_one_line_before_anything_is_written(
    tmp_path, flag, message):
  run = test_faults.launch(tmp_path / "w", *test_faults.FLAGS,
                           "--config.num_replicas=2", flag)
  assert run.returncode == 2, run.stderr[-2000:]
  lines = [line for line in run.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: replica_sweep: "), lines
  assert message in lines[0]
  assert not os.path.exists(tmp_path / "w")


def test_a_sweep_needs_more_than_one_replica():
  config = test_faults.tiny_config(replica_sweep="learning_rate=0.1")
  with pytest.raises(rules.ConfigError, match="set num_replicas to the number"):
    rules.validate(config)
  with pytest.raises(rules.ConfigError, match="num_replicas: expected an integer"):
    rules.validate(test_faults.tiny_config(num_replicas=0))


def test_load_trained_needs_a_replica_for_a_replicated_run(tmp_path):
  train.train_and_evaluate(small_config(num_replicas=2, num_train_steps=10),
                           str(tmp_path / "two"))
  with pytest.raises(ValueError, match="holds 2 replicas"):
    train.load_trained(str(tmp_path / "two"))
  config, _, _, _ = train.load_trained(str(tmp_path / "two"), replica=1)
  assert config.seed == 1 and config.num_replicas == 1
  with pytest.raises(ValueError, match="expected 0..1"):
    train.load_trained(str(tmp_path / "two"), replica=2)
  train.train_and_evaluate(small_config(num_train_steps=10), str(tmp_path / "one"))
  with pytest.raises(ValueError, match="holds one model"):
    train.load_trained(str(tmp_path / "one"), replica=1)


def test_a_config_json_without_the_replica_keys_still_resumes(tmp_path):
  config = small_config(num_train_steps=10)
  train.train_and_evaluate(config, str(tmp_path))
  path = tmp_path / "config.json"
  saved = json.loads(path.read_text())
  del saved["num_replicas"], saved["replica_sweep"]
  path.write_text(json.dumps(saved))
  config.num_train_steps = 20
  summary = train.train_and_evaluate(config, str(tmp_path))
  assert summary["step"] == 20 and "replica" not in test_faults.read_metrics(
      tmp_path)[-1]


def test_stack_take_and_padded_batches():
  trees = [{"a": np.full((2,), r), "b": (np.full((), r * 10),)} for r in range(3)]
  stacked = replicas.stack(trees)
  assert stacked["a"].shape == (3, 2)
  assert replicas.take(stacked, 2)["b"][0] == 20

  class Stream:
    def __init__(self, length):
      self.length, self.position = length, 0

    def __next__(self):
      self.position += 1
      return {"inputs": np.ones((2, self.length), np.int32)}

    def get_state(self):
      return {"position": self.position}

    def set_state(self, state):
      self.position = state["position"]

  batches = replicas.ReplicaBatches([Stream(3), Stream(5)])
  batch = next(batches)
  assert batch["inputs"].shape == (2, 2, 5)
  assert batch["inputs"][0, :, 3:].sum() == 0 and batch["inputs"][1].sum() == 10
  assert batches.get_state() == {"kind": "replicas", "replicas": [
      {"position": 1}, {"position": 1}]}
  with pytest.raises(ValueError, match="not that of 2 replicas"):
    batches.set_state({"kind": "generated"})

  class Packed(Stream):  # trees packed node by node: no common first axis
    def __next__(self):
      self.position += 1
      return {"inputs": np.ones((self.length,), np.int32)}

  packed = replicas.ReplicaBatches([Packed(3), Packed(5)])
  with pytest.raises(ValueError, match="cannot be stacked"):
    packed.check_stackable()
  assert packed.get_state()["replicas"] == [{"position": 0}, {"position": 0}]


def test_tools_read_one_replica_of_a_replicated_run(test_text_fixture, tmp_path):
  from experiments import classify  # pylint: disable=g-import-not-at-top
  config = test_text_tasks.small_sentiment_config(
      num_train_steps=2, eval_every_steps=2, log_every_steps=2,
      progress_bar=False, num_replicas=2)
  train.train_and_evaluate(config, str(tmp_path))
  with pytest.raises(ValueError, match="holds 2 replicas"):
    classify.load(str(tmp_path))
  loaded = classify.load(str(tmp_path), replica=1)
  _, _, params, _ = train.load_trained(str(tmp_path), replica=1)
  _, _, other, _ = train.load_trained(str(tmp_path), replica=0)
  for got, expected in zip(jax.tree_util.tree_leaves(loaded.params),
                           jax.tree_util.tree_leaves(params)):
    np.testing.assert_array_equal(got, expected)
  assert any(not np.array_equal(a, b) for a, b in zip(
      jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(other)))
  assert loaded.config.seed == 1


def test_language_model_replicas_carry_their_own_state(tmp_path):
  """Truncated BPTT carries state across batches: each replica its own, in
  training and in evaluation."""
  from tests import test_ptb  # pylint: disable=g-import-not-at-top
  config = test_ptb.tiny_config(tmp_path, num_replicas=2, replica_program="unrolled")
  train.train_and_evaluate(config, str(tmp_path / "two"))
  train.train_and_evaluate(replicas.replica_config(config, 1), str(tmp_path / "one"))
  assert_rows_close(rows_of(tmp_path / "two", replica=1), rows_of(tmp_path / "one"),
                    rtol=0)


def test_a_non_finite_loss_names_the_replica(tmp_path, monkeypatch):
  test_faults._poison_batches_from(monkeypatch, 3)  # pylint: disable=protected-access
  with pytest.raises(train.NonFiniteLossError,
                     match=r"at step 4 \(replica 0: \{'replica': 0, 'seed': 0"):
    train.train_and_evaluate(small_config(num_replicas=2), str(tmp_path))
