"""Faults: kills at any instant, a busy workdir, damaged checkpoints, a config
that disagrees with its checkpoint, Ctrl-C, config changes after a NaN, and
configs that fail before anything is written (docs/reliability.md)."""

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import checkpoints
import input_pipeline
import train
import workdir as workdir_lib
from experiments.configs import adding as adding_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A tiny adding run evaluated every 5 steps, keeping a best checkpoint, so
# both checkpoint managers save several times.
FLAGS = ["--config.seq_len=12", "--config.hidden_size=8", "--config.batch_size=4",
         "--config.max_train_examples=0", "--config.log_every_steps=5",
         "--config.eval_every_steps=5", "--config.num_train_steps=20",
         "--config.num_eval_examples=16", "--config.eval_batch_size=8",
         "--config.stop_when_solved=False", "--config.progress_bar=False",
         "--config.learning_rate=0.05", "--config.best_metric=valid/mse:min"]


def tiny_config(**overrides):
  config = adding_config.get_config()
  values = dict(seq_len=12, hidden_size=8, batch_size=4, max_train_examples=0,
                log_every_steps=5, eval_every_steps=10, num_train_steps=20,
                num_eval_examples=16, eval_batch_size=8, stop_when_solved=False,
                progress_bar=False, lr_decay_steps=40)
  for key, value in {**values, **overrides}.items():
    config[key] = value
  return config


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def launch(workdir, *flags_, fault_point=None, module="experiments.adding"):
  env = dict(os.environ)
  env.pop(checkpoints.FAULT_POINT_VARIABLE, None)
  if fault_point:
    env[checkpoints.FAULT_POINT_VARIABLE] = fault_point
  return subprocess.run(
      [sys.executable, "-m", module, f"--workdir={workdir}", *flags_],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


# Each point kills a fresh run once; the rerun must then finish with the
# uninterrupted run's metrics and best checkpoint.
KILL_POINTS = {
    "train_step:3": "before the first checkpoint",
    "metrics_line:2": "inside the first evaluation, before any checkpoint",
    "checkpoint_written:1": "inside the first checkpoint's save",
    "checkpoint_saved:1": "between the checkpoint and the best checkpoint",
    "checkpoint_written:2": "inside the first best checkpoint's save",
}


def test_kill_at_any_point_then_rerun_matches_uninterrupted(tmp_path):
  straight = launch(tmp_path / "straight", *FLAGS)
  assert straight.returncode == 0, straight.stderr[-2000:]
  expected = read_metrics(tmp_path / "straight")
  expected_best = json.loads((tmp_path / "straight" / "summary.json").read_text())["best"]
  for point, where in KILL_POINTS.items():
    workdir = tmp_path / point.replace(":", "_")
    killed = launch(workdir, *FLAGS, fault_point=point)
    assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
    rerun = launch(workdir, *FLAGS)
    assert rerun.returncode == 0, (point, where, rerun.stderr[-2000:])
    assert read_metrics(workdir) == expected, (point, where)
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["best"] == expected_best, (point, where)
    assert os.listdir(workdir / checkpoints.BEST_DIR) == [str(expected_best["step"])]
    assert not (workdir / workdir_lib.LOCK_FILE).exists()


def test_second_run_on_a_busy_workdir_is_refused_and_a_stale_lock_taken_over(
    tmp_path, capsys):
  holder = subprocess.Popen(
      [sys.executable, "-c",
       "import sys, time, workdir\n"
       "with workdir.lock(sys.argv[1]):\n"
       "  print('locked', flush=True)\n"
       "  time.sleep(120)\n", str(tmp_path)],
      cwd=ROOT, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(train.WorkdirInUseError,
                       match=rf"workdir {tmp_path} is in use by process "
                             rf"{holder.pid} on host \S+ \(since "):
      train.train_and_evaluate(tiny_config(), str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [workdir_lib.LOCK_FILE]  # nothing written
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  assert (tmp_path / workdir_lib.LOCK_FILE).exists()  # left by the killed holder
  capsys.readouterr()
  assert train.train_and_evaluate(tiny_config(), str(tmp_path))["step"] == 20
  assert f"taking over the stale lock of process {holder.pid}" in capsys.readouterr().out
  assert not (tmp_path / workdir_lib.LOCK_FILE).exists()


def test_damaged_arrays_are_refused_with_one_line_naming_the_step(tmp_path):
  config = tiny_config(hidden_size=64)  # large enough for unchecked data files
  train.train_and_evaluate(config, str(tmp_path))
  step_dir = tmp_path / "checkpoints" / "20"
  largest = max((p for p in (step_dir / "state").rglob("*") if p.is_file()),
                key=lambda p: p.stat().st_size)
  data = bytearray(largest.read_bytes())
  data[len(data) // 2] ^= 0x01
  largest.write_bytes(bytes(data))
  config.num_train_steps = 30
  with pytest.raises(checkpoints.CheckpointError) as error:
    train.train_and_evaluate(config, str(tmp_path))
  message = str(error.value)
  assert "\n" not in message
  assert message.startswith(f"checkpoint 20 in {tmp_path / 'checkpoints'} is "
                            f"damaged: its arrays do not match the sha256")
  assert f"move {step_dir} away" in message and "from checkpoint 10" in message
  shutil.move(step_dir, str(step_dir) + ".damaged")     # as the message says
  assert train.train_and_evaluate(config, str(tmp_path))["step"] == 30


def test_checkpoint_errors_print_one_line_and_no_noise(tmp_path):
  train.train_and_evaluate(tiny_config(), str(tmp_path))
  # A config that builds other shapes is named as the culprit, not the checkpoint.
  mismatch = launch(tmp_path, "--step=10", "--set=hidden_size=3",
                    module="experiments.evaluate")
  lines = mismatch.stderr.strip().splitlines()
  assert mismatch.returncode != 0
  assert "the config and checkpoint 10" in lines[-1] and "disagree" in lines[-1]
  assert "damaged" not in lines[-1]
  assert len(lines) == 1, mismatch.stderr[-3000:]

  for path in (tmp_path / "checkpoints" / "20").rglob("*"):
    if path.is_file():
      path.write_bytes(b"garbage")
  flags_ = [f"--config.{k}={v}" for k, v in [
      ("seq_len", 12), ("hidden_size", 8), ("batch_size", 4),
      ("max_train_examples", 0), ("log_every_steps", 5), ("eval_every_steps", 10),
      ("num_train_steps", 30), ("num_eval_examples", 16), ("eval_batch_size", 8),
      ("stop_when_solved", False), ("progress_bar", False), ("lr_decay_steps", 40)]]
  damaged = launch(tmp_path, *flags_)
  lines = damaged.stderr.strip().splitlines()
  assert damaged.returncode != 0
  assert [line for line in lines if line.startswith("error:")] == [lines[-1]]
  assert "checkpoint 20" in lines[-1] and "cannot be restored" in lines[-1]
  assert "from checkpoint 10" in lines[-1]
  assert len(lines) <= 3, damaged.stderr[-3000:]


def _poison_batches_from(monkeypatch, index):
  original_next = input_pipeline.GeneratedBatches.__next__

  def poisoned_next(self):
    batch = original_next(self)
    if self._index > index:
      batch["targets"] = batch["targets"] * np.nan
    return batch
  monkeypatch.setattr(input_pipeline.GeneratedBatches, "__next__", poisoned_next)


def test_config_change_after_a_non_finite_loss(tmp_path, monkeypatch):
  config = tiny_config()
  with monkeypatch.context() as patch:
    _poison_batches_from(patch, 13)
    with pytest.raises(train.NonFiniteLossError,
                       match="--allow_config_change=learning_rate,grad_clip_norm"):
      train.train_and_evaluate(config, str(tmp_path))
  config.learning_rate, config.grad_clip_norm = 0.01, 0.0  # clipping stage removed
  with pytest.raises(ValueError, match=r"different config \(grad_clip_norm: 1.0 -> "
                     r"0.0; learning_rate: 0.02 -> 0.01\).*--allow_config_change="
                     r"grad_clip_norm,learning_rate"):
    train.train_and_evaluate(config, str(tmp_path))
  with pytest.raises(ValueError, match="allow_config_change: hidden_size cannot "
                     "change on resume"):
    train.train_and_evaluate(config, str(tmp_path),
                             allow_config_change=("learning_rate", "hidden_size"))
  summary = train.train_and_evaluate(
      config, str(tmp_path), allow_config_change=("learning_rate", "grad_clip_norm"))
  assert summary["step"] == 20
  changes = [r for r in read_metrics(tmp_path) if r["split"] == "config_change"]
  assert changes == [{"step": 10, "split": "config_change", "changes": {
      "grad_clip_norm": [1.0, 0.0], "learning_rate": [0.02, 0.01]}}]
  saved = json.loads((tmp_path / "config.json").read_text())
  assert saved["learning_rate"] == 0.01 and saved["grad_clip_norm"] == 0.0
  config.num_train_steps = 30   # the new config is now the run's own
  assert train.train_and_evaluate(config, str(tmp_path))["step"] == 30
  assert len([r for r in read_metrics(tmp_path) if r["split"] == "config_change"]) == 1


def test_nothing_is_written_before_the_config_and_model_are_valid(tmp_path, monkeypatch):
  with pytest.raises(ValueError, match="max_checkpoints_to_keep: expected an "
                     "integer >= 1"):
    train.train_and_evaluate(tiny_config(max_checkpoints_to_keep=0),
                             str(tmp_path / "keep0"))
  assert not (tmp_path / "keep0").exists()
  with pytest.raises(ValueError):
    train.train_and_evaluate(tiny_config(hidden_size=0), str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()

  def failing_init(config, task, tx):
    raise ValueError("model init failed")
  with monkeypatch.context() as patch:
    patch.setattr(train, "initial_state", failing_init)
    with pytest.raises(ValueError, match="model init failed"):
      train.train_and_evaluate(tiny_config(hidden_size=16), str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()
  assert train.train_and_evaluate(tiny_config(), str(tmp_path / "run"))["step"] == 20


def test_ctrl_c_says_where_the_run_resumes(tmp_path, monkeypatch):
  def interrupt_at(step):
    passes = []

    def fault_point(name):
      if name == "train_step":
        passes.append(name)
        if len(passes) == step:
          raise KeyboardInterrupt
    return fault_point

  monkeypatch.setattr(train, "fault_point", interrupt_at(4))
  with pytest.raises(train.RunInterrupted,
                     match="interrupted at step 4; no checkpoint was saved yet"):
    train.train_and_evaluate(tiny_config(), str(tmp_path))
  monkeypatch.setattr(train, "fault_point", interrupt_at(19))
  with pytest.raises(train.RunInterrupted,
                     match=rf"interrupted at step 19; rerun the same command to "
                           rf"resume from checkpoint 10 in {tmp_path}/checkpoints"):
    train.train_and_evaluate(tiny_config(), str(tmp_path))
  monkeypatch.setattr(train, "fault_point", lambda name: None)
  assert train.train_and_evaluate(tiny_config(), str(tmp_path))["step"] == 20
  assert [r["step"] for r in read_metrics(tmp_path) if r["split"] == "valid"] == [10, 20]
