"""The music task (Chung et al. 2014) on fake rolls: the NLL against closed
forms, padding ignored, a causal model, every piece once per epoch, a tiny
training run, and the sampler (against the full-sequence model, and its
MIDI read back by music21)."""

import json
import math
import re
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import train
from corpora import music as music_data
from experiments import music_study
from experiments import sample_music
from experiments.configs import music as music_config
from experiments.configs import rules
from models import piano_roll
from tasks import music

P = music_data.NUM_PITCHES


def fake_rolls(seed: int, lengths):
  rng = np.random.default_rng(seed)
  return [(rng.random((n, P)) < 0.05).astype(np.uint8) for n in lengths]


FAKE = {"train": fake_rolls(0, [5, 9, 7, 12, 3]), "valid": fake_rolls(1, [6, 10]),
        "test": fake_rolls(2, [4, 11, 8])}


def read_fake(split, step="quarter", transpose="none", data_dir=None):
  del step, transpose, data_dir
  return [music_data.Chorale(f"{split}{i}", r) for i, r in enumerate(FAKE[split])]


@pytest.fixture
def fake_chorales(monkeypatch):
  monkeypatch.setattr(music.music_data, "read_split", read_fake)


def small_config(**overrides):
  config = music_config.get_config("lstm")
  config.update({**dict(hidden_size=5, bucket_boundaries="", batch_size=2,
                        eval_batch_size=2, num_train_steps=6, eval_every_steps=3,
                        log_every_steps=3, progress_bar=False), **overrides})
  rules.validate(config)
  return config


def batch_of(rolls, steps):
  return music.make_rows(rolls)(np.arange(len(rolls)), steps)


def test_p_one_half_everywhere_costs_88_ln2_per_frame_and_padding_is_free():
  batch = batch_of(FAKE["train"][:3], 12)
  nll, sums = music.loss(jnp.zeros((3, 12, P)), batch)
  assert float(nll) == pytest.approx(P * math.log(2), rel=1e-6)
  assert float(sums["frames"]) == 5 + 9 + 7
  # Padding frames and rows: huge logits there change nothing.
  mask = np.arange(12)[None, :] < batch["lengths"][:, None]
  logits = jnp.where(mask[..., None], jnp.zeros((3, 12, P)), 1e4)
  padded = dict(batch, lengths=np.append(batch["lengths"], 1),
                weights=np.append(batch["weights"], 0.0),
                inputs=np.concatenate([batch["inputs"], batch["inputs"][:1]]),
                targets=np.concatenate([batch["targets"], batch["targets"][:1]]))
  logits = jnp.concatenate([logits, jnp.full((1, 12, P), 1e4)])
  nll_padded, sums_padded = music.loss(logits, padded)
  assert float(nll_padded) == pytest.approx(P * math.log(2), rel=1e-6)
  assert float(sums_padded["pieces"]) == 3


def test_nll_equals_a_python_loop_over_frames_and_pitches():
  batch = batch_of(FAKE["valid"], 10)
  logits = np.random.default_rng(3).normal(size=(2, 10, P))
  _, sums = music.loss(jnp.asarray(logits), batch)
  total, notes = 0.0, 0
  for b, roll in enumerate(FAKE["valid"]):
    for t in range(len(roll)):
      for p in range(P):
        prob = 1 / (1 + math.exp(-logits[b, t, p]))
        total -= math.log(prob if roll[t, p] else 1 - prob)
        notes += int(roll[t, p])
  assert float(sums["nll_sum"]) == pytest.approx(total, rel=1e-5)
  metrics = music.summarize({k: float(v) for k, v in sums.items()})
  assert metrics["nll"] == pytest.approx(total / 16, rel=1e-5)
  assert metrics["nll_per_note"] == pytest.approx(total / notes, rel=1e-5)


def test_inputs_are_the_targets_one_frame_late_from_silence():
  batch = batch_of(FAKE["train"][:2], 9)
  roll = FAKE["train"][0]
  np.testing.assert_array_equal(batch["inputs"][0, 0], 0)
  np.testing.assert_array_equal(batch["inputs"][0, 1:5], roll[:4])
  np.testing.assert_array_equal(batch["targets"][0, :5], roll)
  assert batch["inputs"].dtype == np.float32 and list(batch["lengths"]) == [5, 9]


def test_the_model_is_causal():
  model = piano_roll.NextFrameModel(num_pitches=P, cell="gru", hidden_size=6)
  frames = jnp.asarray(np.stack([fake_rolls(4, [10])[0]]), jnp.float32)
  params = model.init(jax.random.PRNGKey(0), frames)["params"]
  changed = frames.at[:, 6:].set(1.0 - frames[:, 6:])
  a = model.apply({"params": params}, frames)
  b = model.apply({"params": params}, changed)
  np.testing.assert_array_equal(np.asarray(a[:, :6]), np.asarray(b[:, :6]))
  assert not np.allclose(np.asarray(a[:, 6:]), np.asarray(b[:, 6:]))


def test_every_training_piece_once_per_epoch(fake_chorales):
  task = music.build(small_config())
  seen = []
  for _ in range(3):   # 5 pieces, batches of 2 per bucket: 3 batches an epoch
    batch = next(task.train_batches)
    seen += [tuple(map(tuple, np.argwhere(batch["targets"][b, :n])))
             for b, n in enumerate(batch["lengths"]) if batch["weights"][b]]
  want = [tuple(map(tuple, np.argwhere(r))) for r in FAKE["train"]]
  assert sorted(seen) == sorted(want)


def read_metrics(workdir):
  with open(workdir / "metrics.jsonl") as f:
    return [json.loads(line) for line in f]


def test_tiny_run_reports_nll_and_keeps_the_best(fake_chorales, tmp_path):
  summary = train.train_and_evaluate(small_config(), str(tmp_path))
  test = summary["metrics"]["test"]
  assert test["frames"] == 4 + 11 + 8 and test["pieces"] == 3
  assert {"nll", "nll_per_note", "accuracy"} <= set(test)
  assert test["nll"] < P * math.log(2)    # learnt at least the notes' rarity
  assert summary["best"]["value"] == min(
      r["nll"] for r in read_metrics(tmp_path) if r["split"] == "valid")


def test_greedy_sample_follows_the_full_sequence_model():
  model = piano_roll.NextFrameModel(num_pitches=P, cell="lstm", hidden_size=7)
  primer = np.concatenate([np.zeros((1, P)), fake_rolls(5, [4])[0]]).astype(np.float32)
  params = model.init(jax.random.PRNGKey(1), primer[None])["params"]
  # Bias the output so that some pitches are on and some off.
  params["output"]["bias"] = jnp.linspace(-3.0, 3.0, P)
  frames = np.asarray(piano_roll.sample(model, params, primer, 6,
                                        jax.random.PRNGKey(0), temperature=0.0))
  assert frames.shape == (6, P) and 0 < frames.sum() < frames.size
  whole = np.concatenate([primer, frames])
  logits = np.asarray(model.apply({"params": params}, whole[None]))[0]
  for k in range(6):   # frame k follows from the logits after frame P + k - 1
    np.testing.assert_array_equal(frames[k], logits[len(primer) - 1 + k] > 0)
  again = piano_roll.sample(model, params, primer, 6, jax.random.PRNGKey(0), 1.0)
  other = piano_roll.sample(model, params, primer, 6, jax.random.PRNGKey(1), 1.0)
  assert not np.array_equal(np.asarray(again), np.asarray(other))
  with pytest.raises(ValueError, match="primer"):
    piano_roll.sample(model, params, primer[:, :5], 6, jax.random.PRNGKey(0))


def test_sample_music_writes_midi_that_music21_reads_back(fake_chorales, tmp_path,
                                                          monkeypatch):
  workdir = tmp_path / "run"
  train.train_and_evaluate(small_config(), str(workdir))
  monkeypatch.setattr(sample_music.music_data, "read_split", read_fake)
  config, model, params = sample_music.load(str(workdir))
  sample = sample_music.continue_piece(config, model, params, piece=1, primer_frames=3,
                                       steps=5)
  assert sample.roll.shape == (8, P)
  np.testing.assert_array_equal(sample.roll[:3], FAKE["test"][1][:3])
  out = tmp_path / "sample.mid"
  music_data.write_midi(sample.roll, str(out), 1.0)
  np.testing.assert_array_equal(music_data.read_midi_roll(str(out), 1.0), sample.roll)


def sample_flags(tmp_path, **values):
  fields = dict(workdir=str(tmp_path), out=f"{tmp_path}/a.mid", png="", steps=4,
                temperature=1.0, best=False, step=None, replica=None, piece=0,
                primer_frames=2, seed=0)
  return types.SimpleNamespace(**{**fields, **values})


@pytest.mark.parametrize("values, message", [
    (dict(steps=0), "--steps: expected a positive integer"),
    (dict(out="x.wav"), "--out: expected a .mid"),
    (dict(out="/no/such/folder/x.mid"), "--out: the folder /no/such/folder does not exist"),
    (dict(temperature=-1.0), "--temperature: expected a value >= 0"),
])
def test_sample_music_bad_flags(values, message, tmp_path):
  with pytest.raises(sample_music.cli.UsageError, match=re.escape(message)):
    sample_music._run(sample_flags(tmp_path, **values))


def test_sample_music_bad_flag_is_one_line_exit_2(tmp_path):
  result = subprocess.run([sys.executable, "-m", "experiments.sample_music",
                           f"--workdir={tmp_path}", f"--out={tmp_path}/a.mid",
                           "--steps=0"], capture_output=True, text=True, check=False)
  assert result.returncode == 2, result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith(
      "error: --steps: expected a positive integer")


@pytest.mark.parametrize("cell, units", [("rnn", 100), ("lstm", 36), ("gru", 46)])
def test_parameter_count_closed_form_equals_flax(cell, units):
  config = music_config.get_config({"rnn": "tanh"}.get(cell, cell))
  assert config.hidden_size == units
  model = music.build_model(config)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 2, P)))["params"]
  flax_count = sum(x.size for x in jax.tree_util.tree_leaves(params))
  assert music_study.parameter_count(config.to_dict()) == flax_count
  assert 20_000 < flax_count < 28_000   # the paper's "about 20k"


def test_study_picks_the_best_rate_then_trains_seeds(fake_chorales, tmp_path, monkeypatch):
  def launch(workdir, cell, size, flags_):
    overrides = dict(f[len("--config."):].split("=", 1) for f in flags_)
    config = small_config(cell=cell, num_train_steps=int(overrides["num_train_steps"]),
                          num_replicas=int(overrides["num_replicas"]))
    if "replica_sweep" in overrides:
      config.replica_sweep = overrides["replica_sweep"]
    if "learning_rate" in overrides:
      config.learning_rate = float(overrides["learning_rate"])
    train.train_and_evaluate(config, workdir)
  monkeypatch.setattr(music_study, "launch", launch)
  results = music_study.run_study(str(tmp_path), ["gru"], "paper", seeds=2, steps=3,
                                  learning_rates="1e-6,3e-2", time_updates=False)
  rate, tried = music_study.best_learning_rate(str(tmp_path / "sweep_gru"))
  assert [lr for lr, _ in tried] == [1e-6, 3e-2]
  assert rate == min(tried, key=lambda t: t[1])[0] and results[0].learning_rate == rate
  assert len(results[0].valid) == 2 and results[0].curves.shape == (2, 1)
  table = (tmp_path / "table.md").read_text()
  assert "| GRU | 46 |" in table and "8.54" in table
  for name in ("curves_updates.png", "curves_seconds.png"):
    assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_update_seconds_times_every_cell(fake_chorales):
  seconds = music_study.update_seconds(["gru"], "paper", rounds=2, calls=1)
  assert set(seconds) == {"gru"} and 0 < seconds["gru"] < 60


@pytest.mark.parametrize("values, message", [
    (dict(cells="tanh,elman"), "--cells: expected a comma-separated subset"),
    (dict(seeds=1), "--seeds: expected at least 2"),
    (dict(learning_rates="0.1,-1"), "--learning_rates: expected positive numbers"),
    (dict(size="huge"), "--size: expected 'paper' or 'large'"),
])
def test_music_study_bad_flags(values, message, tmp_path):
  fields = dict(root=str(tmp_path), cells="tanh", size="paper", seeds=2, steps=1,
                learning_rates="1e-3")
  with pytest.raises(music_study.cli.UsageError, match=re.escape(message)):
    music_study._run(types.SimpleNamespace(**{**fields, **values}))
