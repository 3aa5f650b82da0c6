"""The generic loop: smoke runs per task, resume, budgets, clear failures."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import checkpoints
import input_pipeline
import train
import workdir as workdir_lib
from experiments.configs import adding as adding_config
from experiments.configs import reber as reber_config
from experiments.configs import sentiment as sentiment_config
from experiments.configs import tagging as tagging_config
from experiments.configs import temporal_order as order_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(config, **overrides):
  """Shrinks any task config to a seconds-long run."""
  config.hidden_size = 8
  config.batch_size = 4
  config.num_train_steps = 20
  config.max_train_examples = 0
  config.eval_every_steps = 10
  config.log_every_steps = 5
  config.num_eval_examples = 16
  config.eval_batch_size = 8
  config.progress_bar = False
  config.stop_when_solved = False
  config.lr_decay_steps = 40     # so that a cosine schedule ignores the budget
  for key, value in overrides.items():
    config[key] = value
  return config


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


CONFIGS = {
    "adding": lambda: tiny(adding_config.get_config(), seq_len=12),
    "temporal_order": lambda: tiny(order_config.get_config()),
    "temporal_order_6b": lambda: tiny(order_config.get_config("6b")),
    "reber": lambda: tiny(reber_config.get_config(), max_len=20),
    "sentiment_rt": lambda: tiny(sentiment_config.get_config("rt"), max_train_size=16,
                                 max_eval_size=16, bucket_boundaries="64", embed_size=8),
    "tagging_ud_he": lambda: tiny(tagging_config.get_config("ud_he"), max_train_size=16,
                                  max_eval_size=16, bucket_boundaries="128", embed_size=8,
                                  char_embed_size=4, char_hidden_size=4),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_smoke_each_launcher_config(name, tmp_path):
  summary = train.train_and_evaluate(CONFIGS[name](), str(tmp_path))
  records = read_metrics(tmp_path)
  assert [(r["step"], r["split"]) for r in records] == [
      (s, split) for s in (10, 20) for split in ("train", "valid", "test")]
  for record in records:
    values = [v for k, v in record.items() if k not in ("split", "solved")]
    assert all(np.isfinite(values)), record
  assert summary["step"] == 20 and summary["examples_seen"] == 80
  assert summary["metrics"]["test"] == {
      k: v for k, v in records[-1].items()
      if k not in ("step", "split", "examples_seen", "solved")}
  assert os.path.isdir(tmp_path / "tensorboard")
  assert json.loads((tmp_path / "summary.json").read_text())["step"] == 20


def test_resume_gives_the_uninterrupted_run(tmp_path):
  config = CONFIGS["adding"]()
  config.num_train_steps = 40
  train.train_and_evaluate(config, str(tmp_path / "straight"))

  config.num_train_steps = 20
  train.train_and_evaluate(config, str(tmp_path / "resumed"))
  # Simulate a crash after a metrics line was written but before its
  # checkpoint: the line must be dropped and rewritten on resume.
  with open(tmp_path / "resumed" / "metrics.jsonl", "a") as f:
    f.write(json.dumps({"step": 25, "split": "valid", "mse": -1.0}) + "\n")
  config.num_train_steps = 40
  summary = train.train_and_evaluate(config, str(tmp_path / "resumed"))
  assert summary["step"] == 40
  assert read_metrics(tmp_path / "resumed") == read_metrics(tmp_path / "straight")


def test_relative_workdir(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  summary = train.train_and_evaluate(CONFIGS["adding"](), "runs/relative")
  assert summary["step"] == 20
  assert sorted(os.listdir(tmp_path / "runs" / "relative" / "checkpoints")) == ["10", "20"]


def test_example_budget_and_solved_stop(tmp_path):
  config = CONFIGS["adding"]()
  config.num_train_steps = 0
  config.max_train_examples = 30      # 8 steps of 4 -> 32 examples
  summary = train.train_and_evaluate(config, str(tmp_path / "budget"))
  assert summary["step"] == 8 and summary["examples_seen"] == 32
  assert read_metrics(tmp_path / "budget")[-1]["step"] == 8

  config = CONFIGS["adding"]()
  config.stop_when_solved = True
  original = train.tasks_lib.build

  def always_solved(cfg):
    task = original(cfg)
    return task.__class__(**{**task.__dict__, "solved": lambda m: True})
  try:
    train.tasks_lib.build = always_solved
    summary = train.train_and_evaluate(config, str(tmp_path / "solved"))
  finally:
    train.tasks_lib.build = original
  assert summary["solved"] and summary["step"] == 10


def test_changed_config_or_run_files_on_resume_is_an_error(tmp_path, monkeypatch):
  # A task's run_files (e.g. nmt's subword vocabulary) go to the workdir;
  # resuming with other contents (the corpus changed) is refused.
  build, contents = train.tasks_lib.build, [b"vocabulary 1"]
  monkeypatch.setattr(train.tasks_lib, "build", lambda config: dataclasses.replace(
      build(config), run_files={"vocab.model": contents[0]}))
  config = CONFIGS["adding"]()
  train.train_and_evaluate(config, str(tmp_path))
  assert (tmp_path / "vocab.model").read_bytes() == b"vocabulary 1"
  config.hidden_size = 16
  with pytest.raises(ValueError, match=r"different config \(hidden_size: 8 -> 16\)"):
    train.train_and_evaluate(config, str(tmp_path))
  config.hidden_size = 8
  assert train.train_and_evaluate(config, str(tmp_path))["step"] == 20  # resumes
  contents[0] = b"vocabulary 2"
  with pytest.raises(ValueError, match="vocab.model differs from the one the task builds"):
    train.train_and_evaluate(config, str(tmp_path))
  assert (tmp_path / "vocab.model").read_bytes() == b"vocabulary 1"
  contents[0] = b"vocabulary 1"
  # The step budget may grow, unless it is the cosine schedule's horizon.
  config.hidden_size, config.lr_decay_steps = 8, 0
  train.train_and_evaluate(config, str(tmp_path / "cosine"))
  config.num_train_steps = 30
  with pytest.raises(ValueError, match=r"num_train_steps: 20 -> 30"):
    train.train_and_evaluate(config, str(tmp_path / "cosine"))


def test_corrupt_checkpoint_is_a_clear_error_and_is_kept(tmp_path):
  config = CONFIGS["adding"]()
  train.train_and_evaluate(config, str(tmp_path))
  step_dir = tmp_path / "checkpoints" / "20"
  files = [p for p in step_dir.rglob("*") if p.is_file()]
  assert files
  for path in files:
    path.write_bytes(b"garbage")
  before = sorted(str(p) for p in (tmp_path / "checkpoints").rglob("*"))
  config.num_train_steps = 30
  with pytest.raises(checkpoints.CheckpointError, match="checkpoint 20 .* cannot be restored"):
    train.train_and_evaluate(config, str(tmp_path))
  assert sorted(str(p) for p in (tmp_path / "checkpoints").rglob("*")) == before


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
  original_next = input_pipeline.GeneratedBatches.__next__

  def poisoned_next(self):
    batch = original_next(self)
    if self._index > 13:  # batches from step 13 on have a NaN target
      batch["targets"] = batch["targets"] * np.nan
    return batch
  monkeypatch.setattr(input_pipeline.GeneratedBatches, "__next__", poisoned_next)
  config = CONFIGS["adding"]()
  with pytest.raises(train.NonFiniteLossError,
                     match=r"at step 14; the last good checkpoint \(step 10\)"):
    train.train_and_evaluate(config, str(tmp_path))
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10"]


def test_bad_config_values_raise(tmp_path):
  for key, value, match in [("cell", "lstn", "unknown cell 'lstn'"),
                            ("optimizer", "adagrad", "unknown optimizer"),
                            ("task", "sorting", "unknown task 'sorting'"),
                            ("eval_every_steps", 7, "multiple of log_every_steps")]:
    config = CONFIGS["adding"]()
    config[key] = value
    with pytest.raises(ValueError, match=match):
      train.train_and_evaluate(config, str(tmp_path / key))


def test_step_schedule():
  config = CONFIGS["adding"]()
  config.lr_schedule, config.learning_rate = "step", 1.0
  config.lr_decay_start_step, config.lr_decay_every_steps = 4, 2
  schedule = train.make_schedule(config)
  assert [float(schedule(s)) for s in range(8)] == [1, 1, 1, 1, .5, .5, .25, .25]


# ----------------------------------------------------------------------------
# The launcher, as a user runs it.

def _launch(workdir, *flags_, wait=True):
  command = [sys.executable, "-m", "experiments.adding", f"--workdir={workdir}",
             "--config.progress_bar=False", *flags_]
  if not wait:
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
  return subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                        timeout=300)


TINY_FLAGS = ["--config.seq_len=12", "--config.hidden_size=8",
              "--config.batch_size=4", "--config.max_train_examples=0",
              "--config.log_every_steps=5", "--config.num_eval_examples=16",
              "--config.stop_when_solved=False"]


def test_launcher_errors_are_one_line(tmp_path):
  typo = _launch(tmp_path / "a", "--config.hiden_size=8")
  assert typo.returncode != 0 and "hiden_size" in typo.stderr
  unknown = _launch(tmp_path / "b", "--config.cell=lstn", *TINY_FLAGS)
  assert unknown.returncode == 2
  assert unknown.stderr.strip().splitlines()[-1] == (
      "error: cell: unknown cell 'lstn'; known cells are ['gru', 'lstm', 'rnn']")


def test_sigkill_then_rerun_matches_uninterrupted(tmp_path):
  run_flags = TINY_FLAGS + ["--config.num_train_steps=150",
                            "--config.eval_every_steps=10"]
  straight = _launch(tmp_path / "straight", *run_flags)
  assert straight.returncode == 0, straight.stderr[-2000:]

  process = _launch(tmp_path / "killed", *run_flags, wait=False)
  checkpoint_dir = tmp_path / "killed" / "checkpoints"
  deadline = time.time() + 120
  while time.time() < deadline and process.poll() is None:
    if checkpoint_dir.is_dir() and any(p.name.isdigit() and int(p.name) >= 40
                                       for p in checkpoint_dir.iterdir()):
      break
    time.sleep(0.05)
  assert process.poll() is None, "run finished before it could be killed"
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert read_metrics(tmp_path / "killed")[-1]["step"] < 150

  resumed = _launch(tmp_path / "killed", *run_flags)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "Resumed from checkpoint" in resumed.stdout
  assert read_metrics(tmp_path / "killed") == read_metrics(tmp_path / "straight")


def test_ema_params_are_evaluated_and_resumed(tmp_path):
  import jax  # pylint: disable=g-import-not-at-top
  config = CONFIGS["adding"]()
  config.ema_decay = 1.0 - 1e-7    # the average barely moves from the init
  train.train_and_evaluate(config, str(tmp_path / "ema"))
  task = train.tasks_lib.build(config)
  init_rng, _ = jax.random.split(jax.random.PRNGKey(config.seed))
  params = task.init_params(init_rng, task.first_batch())
  _, eval_step = train.make_steps(task, train.make_optimizer(config))
  at_init = train.evaluate(task, eval_step, params)["valid"]["mse"]
  logged = [r for r in read_metrics(tmp_path / "ema") if r["split"] == "valid"]
  np.testing.assert_allclose([r["mse"] for r in logged], at_init, rtol=1e-3)

  config.ema_decay = 0.0
  no_ema = train.train_and_evaluate(config, str(tmp_path / "plain"))
  assert no_ema["metrics"]["valid"]["mse"] != logged[-1]["mse"]

  config.ema_decay = 0.9           # resume keeps the average too
  config.num_train_steps = 20
  train.train_and_evaluate(config, str(tmp_path / "straight"))
  config.num_train_steps = 10
  train.train_and_evaluate(config, str(tmp_path / "resumed"))
  config.num_train_steps = 20
  train.train_and_evaluate(config, str(tmp_path / "resumed"))
  assert read_metrics(tmp_path / "resumed") == read_metrics(tmp_path / "straight")


def test_evaluate_command_reproduces_the_logged_metrics(tmp_path):
  """experiments.evaluate on a finished run == the run's own last evaluation;
  overrides change the evaluation, unknown keys and missing steps are errors."""
  config = CONFIGS["adding"]()
  config.ema_decay = 0.5           # evaluation must use the average, as training did
  train.train_and_evaluate(config, str(tmp_path))
  logged = {r["split"]: r for r in read_metrics(tmp_path) if r["step"] == 20}

  def evaluate(*flags_):
    result = subprocess.run(
        [sys.executable, "-m", "experiments.evaluate", f"--workdir={tmp_path}",
         *flags_], cwd=ROOT, capture_output=True, text=True, timeout=300)
    return result.returncode, result.stderr, [
        json.loads(line) for line in result.stdout.splitlines() if line]

  code, _, records = evaluate()
  assert code == 0
  for record in records:
    assert record["step"] == 20
    np.testing.assert_allclose(record["mse"], logged[record["split"]]["mse"],
                               rtol=1e-5)
  code, _, records = evaluate("--step=10", "--set=num_eval_examples=8")
  assert code == 0 and {r["step"] for r in records} == {10}
  assert all(r["overrides"] == {"num_eval_examples": 8} for r in records)
  lines = (tmp_path / "evaluations.jsonl").read_text().splitlines()
  assert len(lines) == 2 * len(records)

  code, err, _ = evaluate("--set=no_such_key=1")
  assert code == 2 and "override 'no_such_key': not a key" in err
  code, err, _ = evaluate("--step=7")
  assert code == 2 and "no checkpoint 7" in err
  with workdir_lib.lock(str(tmp_path)):  # as a training run holds it
    code, err, _ = evaluate()
  assert code == 1 and "is in use by process" in err
  assert len((tmp_path / "evaluations.jsonl").read_text().splitlines()) == len(lines)


def test_best_metric_keeps_the_best_evaluation(tmp_path):
  """best_metric keeps the state of the best evaluation (not the latest),
  reports it in the summary, survives a resume, and evaluates back exactly."""
  config = tiny(adding_config.get_config(), seq_len=12, eval_every_steps=5,
                num_train_steps=30, learning_rate=0.3,
                best_metric="valid/mse:min")
  summary = train.train_and_evaluate(config, str(tmp_path))
  valid = [r for r in read_metrics(tmp_path) if r["split"] == "valid"]
  best = min(valid, key=lambda r: r["mse"])
  assert summary["best"]["step"] == best["step"]
  assert summary["best"]["value"] == pytest.approx(best["mse"])
  assert best["step"] != valid[-1]["step"]  # else this test proves nothing

  _, task, params, step = train.load_trained(str(tmp_path), best=True)
  _, eval_step = train.make_steps(task, train.make_optimizer(config))
  assert step == best["step"]
  np.testing.assert_allclose(train.evaluate(task, eval_step, params)["valid"]["mse"],
                             best["mse"], rtol=1e-5)

  config.num_train_steps = 15                     # interrupted, then resumed
  train.train_and_evaluate(config, str(tmp_path / "resumed"))
  config.num_train_steps = 30
  resumed = train.train_and_evaluate(config, str(tmp_path / "resumed"))
  assert resumed["best"] == summary["best"]


def test_bad_best_metric_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="best_metric: expected 'SPLIT/METRIC:min'"):
    train.train_and_evaluate(tiny(adding_config.get_config(),
                                  best_metric="valid/mse"), str(tmp_path / "a"))
  with pytest.raises(ValueError, match="valid/nope is not reported; the task "
                     "reports .*valid/mse"):
    train.train_and_evaluate(tiny(adding_config.get_config(),
                                  best_metric="valid/nope:min"),
                             str(tmp_path / "b"))
  with pytest.raises(ValueError, match="has no best_checkpoint"):
    train.train_and_evaluate(CONFIGS["adding"](), str(tmp_path / "c"))
    train.load_trained(str(tmp_path / "c"), best=True)
