"""The captioner: CNN grid shapes, attention that sums to 1, beam size 1 =
greedy, teacher-forced scores = beam scores, the doubly stochastic penalty
against a loop, a tiny training run on fake scenes with its decoded scores,
and the caption command's inputs."""

import json
import re
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import train
from corpora import captions as caption_data
from experiments import caption
from experiments.configs import captioning as captioning_config
from experiments.configs import rules
from models import captioner
from models import seq2seq as s2s
from tasks import captioning


def small_model(kind, vocab=12, channels=(4, 8, 8)):
  return captioner.Captioner(vocab_size=vocab, decoder_kind=kind, embed_size=8,
                             hidden_size=16, channels=channels)


def images(shape=(3, 64, 64, 3), seed=0):
  return jnp.asarray(np.random.default_rng(seed).integers(0, 256, shape), jnp.uint8)


@pytest.mark.parametrize("shape, cells", [((2, 64, 64, 3), 64), ((2, 16, 64, 1), 16)])
def test_cnn_grid_shapes(shape, cells):
  encoder = captioner.ConvEncoder((4, 8, 6))
  params = encoder.init(jax.random.PRNGKey(0), images(shape))
  grid, vector = encoder.apply(params, images(shape))
  assert grid.shape == (2, cells, 6) and vector.shape == (2, 6)
  fc = params["params"]["fc"]
  centred = np.asarray(grid) - np.asarray(grid).mean(axis=1, keepdims=True)
  want = np.maximum(centred.reshape(2, -1) @ np.asarray(fc["kernel"])
                    + np.asarray(fc["bias"]), 0)
  want = (want - want.mean(-1, keepdims=True)) / np.sqrt(want.var(-1, keepdims=True) + 1e-6)
  np.testing.assert_allclose(np.asarray(vector), want, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="too small"):
    encoder.init(jax.random.PRNGKey(0), images((1, 4, 4, 3)))


def init(model, imgs, steps=5):
  decoder_inputs = jnp.ones((imgs.shape[0], steps), jnp.int32)
  return model.init(jax.random.PRNGKey(1), imgs, None, decoder_inputs)["params"]


def test_attention_weights_sum_to_one_over_the_grid():
  model = small_model("soft_attention")
  imgs = images()
  params = init(model, imgs)
  decoder_inputs = jnp.asarray([[1, 4, 5, 6, 7]] * 3)
  _, weights = model.apply({"params": params}, imgs, None, decoder_inputs,
                           method="teacher_forced")
  assert weights.shape == (3, 5, 64)
  np.testing.assert_allclose(np.asarray(weights.sum(-1)), 1.0, rtol=1e-5)
  assert float(weights.min()) >= 0
  _, none = small_model("show_tell").apply(
      {"params": init(small_model("show_tell"), imgs)}, imgs, None, decoder_inputs,
      method="teacher_forced")
  assert float(jnp.abs(none).sum()) == 0


@pytest.mark.parametrize("kind", captioner.DECODERS)
def test_beam_of_one_is_greedy_and_teacher_forcing_scores_the_beam(kind):
  model = small_model(kind)
  imgs = images()
  params = init(model, imgs)
  greedy = s2s.greedy_decode(model, params, imgs, None, max_len=7)
  beam1 = s2s.beam_search(model, params, imgs, None, beam_size=1, max_len=7)
  np.testing.assert_array_equal(np.asarray(greedy.tokens), np.asarray(beam1.tokens[:, 0]))
  beams = s2s.beam_search(model, params, imgs, None, beam_size=3, max_len=7, alpha=0.0)
  for k in range(3):
    scored = s2s.sequence_log_probs(model, params, imgs, None, beams.tokens[:, k],
                                    beams.lengths[:, k])
    np.testing.assert_allclose(np.asarray(scored), np.asarray(beams.log_probs[:, k]),
                               rtol=1e-4, atol=1e-4)


def test_doubly_stochastic_penalty_equals_a_loop():
  rng = np.random.default_rng(2)
  weights = rng.random((2, 4, 5))
  lengths = np.asarray([3, 1])
  got = np.asarray(captioner.attention_penalty(jnp.asarray(weights), jnp.asarray(lengths)))
  for b in range(2):
    want = sum((1 - sum(weights[b, t, i] for t in range(lengths[b]))) ** 2
               for i in range(5))
    assert got[b] == pytest.approx(want, rel=1e-6)


# ----------------------------------------------------------------------------
# The task on fake scenes.

def fake_split(split, n):
  rng = np.random.default_rng({"train": 0, "valid": 1, "test": 2,
                               "compositional_test": 3}[split])
  out = []
  for _ in range(n):
    colour = int(rng.integers(0, 2))
    image = np.zeros((64, 64, 3), np.uint8)
    image[16:48, 16:48, colour] = 255
    word = ["red", "green"][colour]
    out.append(caption_data.CaptionExample(
        image=image, captions=(f"a {word} square", f"there is a {word} square"),
        scene=json.dumps({"colour": word}), num_objects=1))
  return out


def read_fake(config, split, data_dir=None, max_examples=0):
  del config, data_dir, max_examples
  return fake_split(split, {"train": 16}.get(split, 4))


@pytest.fixture
def fake_scenes(monkeypatch):
  monkeypatch.setattr(captioning.caption_data, "read_split", read_fake)


def small_config(**overrides):
  config = captioning_config.get_config("shapes_attention")
  config.update({**dict(conv_channels="4,8,8", embed_size=8, hidden_size=16,
                        batch_size=8, eval_batch_size=8, num_train_steps=60,
                        eval_every_steps=30, log_every_steps=30, progress_bar=False,
                        lr_schedule="constant",
                        learning_rate=1e-2, max_decode_len=6, beam_size=2,
                        dropout_rate=0.0), **overrides})
  rules.validate(config)
  return config


def test_pairs_and_batches_hold_every_reference(fake_scenes):
  task = captioning.build(small_config())
  vocab = task.vocab
  assert vocab.tokens[:4] == list(captioning.SPECIAL)
  batch = task.eval_splits["valid"][0]
  assert batch["inputs"].shape == (8, 64, 64, 3) and batch["inputs"].dtype == np.uint8
  assert int((batch["target_lengths"] > 0).sum()) == 8   # 4 images x 2 references
  first = batch["targets"][0, :batch["target_lengths"][0]]
  assert first[-1] == s2s.EOS and batch["decoder_inputs"][0, 0] == s2s.BOS
  np.testing.assert_array_equal(batch["decoder_inputs"][0, 1:len(first)], first[:-1])
  assert vocab.decode(first) in fake_split("valid", 4)[0].captions


def test_tiny_run_learns_the_colour_and_scores_its_captions(fake_scenes, tmp_path):
  summary = train.train_and_evaluate(small_config(num_replicas=2), str(tmp_path))
  assert summary["metrics"]["valid"]["sequences"] == 8
  assert set(summary["metrics"]) == {"valid"}
  reports = caption.evaluate_and_write(str(tmp_path))   # both replicas in turn
  assert set(reports) == {"replica_0", "replica_1"}
  for report in reports.values():
    assert set(report) == {"valid", "test", "compositional_test"}
    greedy = report["test"]["greedy"]
    assert greedy["scores"]["exact_match"] == 1.0, greedy["captions"]
  rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  decoded = [r for r in rows if "/" in r["split"]]
  assert {(r["split"], r["replica"]) for r in decoded} >= {
      ("test/greedy", 0), ("test/beam2", 1)}
  caption.evaluate_and_write(str(tmp_path), replica=1)   # again: rows replaced
  rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert len([r for r in rows if "/" in r["split"]]) == len(decoded)
  saved = json.loads((tmp_path / "captions_test_replica0.json").read_text())
  assert len(saved["greedy"]["captions"]) == 4
  assert "test greedy" in caption.format_scores(reports)
  table = caption.score_table(str(tmp_path))
  assert "| test | greedy | 2 | " in table and "| test | 1 | " in table
  caption.gallery(str(tmp_path), str(tmp_path / "gallery.png"), count=3, replica=0)
  assert (tmp_path / "gallery.png").read_bytes()[:4] == b"\x89PNG"
  from PIL import Image
  scene = tmp_path / "scene.png"
  example = fake_split("test", 1)[0]
  Image.fromarray(example.image).save(scene)
  config, task, params, _ = caption.load(str(tmp_path), replica=0)
  text, (tokens, attention) = caption.caption_image(config, task, params,
                                                    caption.read_image(str(scene), (64, 64, 3)), 2)
  assert text in example.captions, text
  assert attention.shape == (len(tokens), 64) and tokens[-1] == "</s>"
  caption.attention_png(caption.read_image(str(scene), (64, 64, 3)), tokens, attention,
                        str(tmp_path / "attention.png"))
  assert (tmp_path / "attention.png").read_bytes()[:4] == b"\x89PNG"


def caption_command(workdir, *args):
  return subprocess.run([sys.executable, "-m", "experiments.caption",
                         f"--workdir={workdir}", *args],
                        capture_output=True, text=True, check=False)


def test_read_image_converts_and_refuses_clearly(tmp_path):
  from PIL import Image
  rgb = tmp_path / "rgb.png"
  Image.fromarray(np.full((30, 40, 3), 200, np.uint8)).save(rgb)
  array = caption.read_image(str(rgb), (64, 64, 3))
  assert array.shape == (64, 64, 3) and array.dtype == np.uint8
  rgba = tmp_path / "rgba.png"
  Image.fromarray(np.full((8, 8, 4), 100, np.uint8)).save(rgba)
  assert caption.read_image(str(rgba), (64, 64, 3)).shape == (64, 64, 3)
  with pytest.raises(caption.cli.UsageError, match="has 3 channel"):
    caption.read_image(str(rgb), (16, 64, 1))
  junk = tmp_path / "junk.png"
  junk.write_bytes(b"not a png")
  with pytest.raises(caption.cli.UsageError, match="not an image"):
    caption.read_image(str(junk), (64, 64, 3))


@pytest.mark.parametrize("values, message", [
    (dict(beam=0), "--beam: expected a positive integer"),
    (dict(image=""), "--image: give an image"),
    (dict(attention_png="/no/such/dir/a.png"), "--attention_png: the folder"),
])
def test_caption_command_bad_flags(values, message, tmp_path):
  fields = dict(workdir=str(tmp_path), image="x.png", beam=5, attention_png="",
                evaluate=False, replica=None, gallery="", split="test", count=8,
                table=False)
  with pytest.raises(caption.cli.UsageError, match=re.escape(message)):
    caption._run(types.SimpleNamespace(**{**fields, **values}))


def test_caption_command_bad_flag_is_one_line_exit_2(tmp_path):
  result = caption_command(tmp_path, "--beam=0", "--image=x.png")
  assert result.returncode == 2, result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith(
      "error: --beam: expected a positive integer")
