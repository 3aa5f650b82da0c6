"""Captioning corpora: shapes scenes against an independent checker, the
compositional split, digits as numbers in words, the TFDS store round trip
and rebuild (small stores), and coco_captions on fixture records."""

import glob
import json
import os

import numpy as np
import pytest

from corpora import captions

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "captions",
                       "coco_karpathy_tiny.json")
SMALL = 12   # examples per split in the test stores


# ----------------------------------------------------------------------------
# Shapes: rendering.

def colour_pixels(image, colour):
  return np.all(image == np.asarray(captions.COLOURS[colour], np.uint8), axis=-1)


def test_render_places_every_object_in_its_cell_and_keeps_it_visible():
  rng = np.random.default_rng(7)
  occluded = 0
  for _ in range(300):
    scene = captions.sample_scene(rng)
    rendering = captions.render_scene(scene, rng)
    image = rendering.image
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert rendering.masks.shape == (len(scene.objects), 64, 64)
    for obj, mask in zip(scene.objects, rendering.masks):
      cy, cx = (int(round((k + 0.5) * 64 / 3)) for k in (obj.row, obj.col))
      window = colour_pixels(image, obj.colour)[cy - 9:cy + 10, cx - 9:cx + 10]
      assert window.sum() >= 8, (obj, window.sum())
      # At least 60% of the painted pixels show the object's colour.
      assert colour_pixels(image, obj.colour)[mask].mean() >= 0.6
    assert np.all(rendering.visible >= 0.6)
    occluded += bool(np.any(rendering.visible < 1))
  assert occluded > 0                                  # occlusion does happen
  background = image[~rendering.masks.any(0)]
  assert background.min() >= 180 and background.std() > 5   # light and not flat


def test_striped_objects_alternate_bands_and_solid_ones_do_not():
  rng = np.random.default_rng(0)
  for fill in ("solid", "striped"):
    scene = captions.Scene((captions.SceneObject("square", "blue", "large", fill, 1, 1),))
    image = captions.render(scene, rng)
    rows = colour_pixels(image, "blue").any(axis=1)
    first, last = np.flatnonzero(rows)[[0, -1]]
    assert rows[first:last + 1].all() == (fill == "solid")


def test_scene_validation_and_json_round_trip():
  scene = captions.sample_scene(np.random.default_rng(1))
  assert captions.Scene.from_json(scene.to_json()) == scene
  with pytest.raises(ValueError, match="colour: expected one of"):
    captions.SceneObject("circle", "orange", "small", "solid", 0, 0)
  with pytest.raises(ValueError, match="row: expected one of"):
    captions.SceneObject("circle", "red", "small", "solid", 3, 0)
  twin = captions.SceneObject("circle", "red", "small", "solid", 0, 0)
  with pytest.raises(ValueError, match="share a cell"):
    captions.Scene((twin, twin))


# ----------------------------------------------------------------------------
# Shapes: captions and the independent checker.

def test_every_reference_is_true_and_well_formed():
  rng = np.random.default_rng(11)
  seen_counts = set()
  for k in range(500):
    scene = captions.sample_scene(rng, compositional=k % 5 == 0)
    references = captions.describe(scene, rng)
    assert len(references) == 5
    seen_counts.add(len(scene.objects))
    for reference in references:
      assert reference == reference.lower() and reference == " ".join(reference.split())
      assert not reference.endswith(".")
      assert captions.caption_is_true(reference, scene), (reference, scene)
      assert captions.caption_is_true(reference, scene.to_json())
  assert seen_counts == {1, 2, 3, 4}


def hand_scene():
  obj = captions.SceneObject
  return captions.Scene((obj("circle", "red", "small", "solid", 0, 0),
                         obj("square", "blue", "large", "striped", 0, 2),
                         obj("triangle", "green", "small", "solid", 2, 0),
                         obj("triangle", "green", "large", "solid", 2, 2)))


@pytest.mark.parametrize("caption", [
    "a small red circle left of a blue square",
    "there is a big striped blue square to the right of a little red circle",
    "two green triangles and a red circle",
    "a red circle , a blue square and two solid green triangles",
    "a red circle above a green triangle and a blue square above a green triangle",
    "a green triangle left of a green triangle",
    "a blue square at the top right",
    "a little green triangle at the bottom left"])
def test_true_captions_pass(caption):
  assert captions.caption_is_true(caption, hand_scene())


@pytest.mark.parametrize("caption", [
    "a small green circle",                             # wrong colour
    "a yellow square",
    "a red circle right of a blue square",              # wrong relation
    "a red circle below a green triangle",
    "a blue square to the left of a red circle",
    "three green triangles",                            # wrong count
    "two blue squares",
    "a big red circle",                                 # wrong size
    "a striped red circle",                             # wrong fill
    "a red circle at the centre",                       # wrong place
    "a red circle left of a red circle",                # needs two red circles
    "a red circle and a purple triangle",               # one false clause
    "a red",                                            # outside the grammar
    "red circle", "a red circles", "two red circle", "the cat sat", "",
    "a red circle and", "two red circles left of a blue square"])
def test_false_captions_fail(caption):
  assert not captions.caption_is_true(caption, hand_scene())


def test_parse_caption_claims():
  claims = captions.parse_caption(
      "there are two small green triangles and a red circle to the left of a big blue square")
  assert claims == [
      captions.ObjectClaim(2, "green", "triangle", size="small"),
      captions.RelationClaim(captions.ObjectClaim(None, "red", "circle"), "left",
                             captions.ObjectClaim(None, "blue", "square", size="large"))]
  assert captions.parse_caption("a circle at the bottom") == [
      captions.ObjectClaim(None, None, "circle", place=(2, 1))]
  for bad in ("a red red circle", "a small big circle", "a circle at the", "a circle left"):
    with pytest.raises(ValueError, match="caption:"):
      captions.parse_caption(bad)


# ----------------------------------------------------------------------------
# Shapes: splits.

@pytest.fixture(scope="module")
def shape_splits():
  return {split: captions.generate_split("shapes", split, 300)
          for split in captions.SPLITS["shapes"]}


def pairs_of(example):
  return [(o.colour, o.shape) for o in captions.Scene.from_json(example.scene).objects]


def test_compositional_split(shape_splits):
  for split in ("train", "valid", "test"):
    assert not any(set(pairs_of(e)) & captions.HELD_OUT for e in shape_splits[split])
  for example in shape_splits["compositional_test"]:
    assert sum(p in captions.HELD_OUT for p in pairs_of(example)) == 1
  held = captions.held_out_counts(shape_splits["compositional_test"])
  assert sum(held.values()) == 300 and min(held.values()) > 30
  train_pairs = {p for e in shape_splits["train"] for p in pairs_of(e)}
  assert {c for c, _ in train_pairs} == set(captions.COLOURS)
  assert {s for _, s in train_pairs} == set(captions.SHAPES)
  assert len(train_pairs) == 10


def test_splits_are_disjoint_deterministic_and_prefixes(shape_splits):
  def canonical(example):
    objects = captions.Scene.from_json(example.scene).objects
    return captions.Scene(tuple(sorted(objects, key=lambda o: (o.row, o.col)))).to_json()
  scenes = {split: {canonical(e) for e in part} for split, part in shape_splits.items()}
  names = list(scenes)
  for i, a in enumerate(names):
    for b in names[i + 1:]:
      assert not scenes[a] & scenes[b], (a, b)
  for split in ("train", "valid", "test"):
    assert all(captions.scene_split(captions.Scene.from_json(e.scene)) == split
               for e in shape_splits[split])
  for split in ("valid", "compositional_test"):
    assert captions.generate_split("shapes", split, 40) == shape_splits[split][:40]
  assert {e.num_objects for e in shape_splits["train"]} == {1, 2, 3, 4}


# ----------------------------------------------------------------------------
# Digits.

@pytest.fixture(scope="module")
def digits():
  return captions.load_digit_images()


def test_number_words_examples_and_round_trip():
  examples = {0: "zero", 7: "seven", 12: "twelve", 40: "forty", 41: "forty one",
              100: "one hundred", 341: "three hundred and forty one",
              1005: "one thousand and five", 1100: "one thousand one hundred",
              1310: "one thousand three hundred and ten", 2000: "two thousand",
              9999: "nine thousand nine hundred and ninety nine"}
  for n, words in examples.items():
    assert captions.number_words(n) == words
  texts = [captions.number_words(n) for n in range(10_000)]
  assert len(set(texts)) == 10_000
  assert [captions.words_number(t) for t in texts] == list(range(10_000))
  assert captions.words_number("  forty   one ") == 41
  for junk in ("", "one hundred forty one", "ten hundred", "and five", "zero zero",
               "one thousand and", "hundred", "forty one one", "Twelve", "a red circle",
               "one hundred and zero", "twenty ten"):
    assert captions.words_number(junk) is None, junk
  for bad in (-1, 10_000, 2.5):
    with pytest.raises(ValueError, match="n: expected an integer"):
      captions.number_words(bad)


def test_digit_images_split(digits):
  assert digits.images.shape == (1797, 8, 8) and digits.images.dtype == np.uint8
  assert digits.images.max() == 255
  parts = captions.split_digit_images(digits.labels)
  assert {s: len(p) for s, p in parts.items()} == {"train": 1258, "valid": 270, "test": 269}
  assert sorted(np.concatenate(list(parts.values()))) == list(range(1797))
  for part in parts.values():
    assert set(digits.labels[part]) == set(range(10))


def test_digit_examples(digits):
  parts = captions.split_digit_images(digits.labels)
  examples = {split: captions.generate_split("digits", split, 200, digits)
              for split in ("train", "test")}
  used = {}
  for split, part in examples.items():
    used[split] = set()
    for e in part:
      scene = json.loads(e.scene)
      n, indices = scene["number"], scene["digit_images"]
      assert e.captions == (captions.number_words(n),)
      assert captions.words_number(e.captions[0]) == n
      assert e.num_objects == len(str(n)) == len(indices)
      assert list(digits.labels[indices]) == [int(c) for c in str(n)]
      assert set(indices) <= set(parts[split])
      used[split].update(indices)
      assert e.image.shape == (16, 64, 1) and e.image.dtype == np.uint8
      small = e.image[::2, ::2, 0]
      assert np.array_equal(e.image[..., 0], np.kron(small, np.ones((2, 2), np.uint8)))
      for k, index in enumerate(indices):
        assert np.array_equal(small[:, 8 * k:8 * k + 8], digits.images[index])
      assert not small[:, 8 * len(indices):].any()        # right-padded with zeros
    assert {e.num_objects for e in part} == {1, 2, 3, 4}
  assert not used["train"] & used["test"]
  assert captions.generate_split("digits", "test", 200, digits) == examples["test"]


# ----------------------------------------------------------------------------
# The store.

def test_store_round_trip_reuse_rebuild_and_names(tmp_path, digits):
  data_dir = str(tmp_path)
  for config in captions.CONFIGS:
    for split in captions.SPLITS[config]:
      got = captions.read_split(config, split, data_dir=data_dir, max_examples=SMALL)
      assert got == captions.generate_split(config, split, SMALL, digits), (config, split)
  assert got[0].image.shape == (16, 64, 1)
  version_dir = tmp_path / f"captions_max_examples_{SMALL}" / "captions" / "shapes" / "1.0.0"
  files = sorted(glob.glob(str(version_dir / "*.array_record*")))
  assert len(files) == 4
  before = {f: os.path.getmtime(f) for f in files}               # reused
  expected = captions.read_split("shapes", "test", data_dir=data_dir, max_examples=SMALL)
  assert {f: os.path.getmtime(f) for f in files} == before
  victim = [f for f in files if "-test." in f][0]
  data = open(victim, "rb").read()
  open(victim, "wb").write(data[:len(data) // 2])                 # damaged: rebuilt
  assert captions.read_split("shapes", "test", data_dir=data_dir,
                             max_examples=SMALL) == expected
  assert os.path.getsize(victim) == len(data)
  with pytest.raises(ValueError, match="config: expected one of .*'shapes', 'digits'"):
    captions.read_split("shape", "train", data_dir=data_dir)
  with pytest.raises(ValueError, match="split: expected one of .*'compositional_test'"):
    captions.read_split("shapes", "validation", data_dir=data_dir)
  with pytest.raises(ValueError, match="split: expected one of"):
    captions.read_split("digits", "compositional_test", data_dir=data_dir)
  with pytest.raises(ValueError, match="max_examples"):
    captions.read_split("digits", "train", data_dir=data_dir, max_examples=-1)


def test_stats_grid_and_main(tmp_path, monkeypatch, capsys, shape_splits):
  stats = captions.split_stats(shape_splits["train"])
  assert stats["examples"] == 300 and sum(stats["objects"].values()) == 300
  assert 2 <= stats["p50"] <= stats["p90"] <= stats["max"] and 20 <= stats["vocabulary"] <= 60
  path = tmp_path / "grid.png"
  captions.save_grid(shape_splits["train"][:5], str(path),
                     [["model says"]] * 5)
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  monkeypatch.setattr(captions, "read_split", lambda config, split, data_dir=None:
                      shape_splits[split][:20] if config == "shapes" else
                      captions.generate_split("digits", split, 20))
  captions.main(["--stats"])
  out = capsys.readouterr().out
  assert "| shapes | compositional_test | 20 |" in out and "| digits | test | 20 |" in out
  assert "red triangle:" in out


# ----------------------------------------------------------------------------
# coco_captions on fixture records.

def fixture_source(split):
  """The fixture's records of a TFDS split, as tfds.data_source gives them."""
  with open(FIXTURE) as f:
    rows = json.load(f)[split]
  return [{"image": np.full((r["height"], r["width"], 3), r["image/id"], np.uint8),
           "image/filename": r["image/filename"].encode(), "image/id": np.int64(r["image/id"]),
           "objects": {"label": np.asarray(r["labels"], np.int64)},
           "captions": {"text": np.asarray([t.encode() for t in r["captions"]], object),
                        "id": np.arange(len(r["captions"]), dtype=np.int64)}}
          for r in rows]


def test_coco_captions_on_fixture_records(tmp_path, monkeypatch):
  calls = []

  def data_source(name, split, data_dir):
    calls.append((name, split, data_dir))
    return fixture_source(split)
  monkeypatch.setattr(captions.tfds, "data_source", data_source)
  train = captions.read_split("coco_captions", "train", data_dir=str(tmp_path))
  assert calls == [("coco_captions", "train", str(tmp_path)),
                   ("coco_captions", "restval", str(tmp_path))]
  assert len(train) == 3
  assert [json.loads(e.scene)["image_id"] for e in train] == [9, 25, 42]
  first = train[0]
  assert isinstance(first, captions.CaptionExample)
  assert first.image.shape == (6, 8, 3) and first.image.dtype == np.uint8
  assert first.captions[0] == "closeup of bins of food that include broccoli and bread"
  assert first.captions[3] == "colorful dishes holding meat vegetables fruit and bread"
  assert first.num_objects == 3 and json.loads(first.scene)["object_labels"] == [50, 50, 44]
  assert train[-1].num_objects == 0 and train[-1].image.shape == (4, 4, 3)
  assert isinstance(train[:2], list) and train[:2] == [train[0], train[1]]
  assert len(captions.read_split("coco_captions", "train", max_examples=2)) == 2
  assert captions.read_split("coco_captions", "valid")[:] == \
      captions.read_split("coco_captions", "val")[:]
  assert json.loads(captions.read_split("coco_captions", "test")[0].scene)["image_id"] == 74
  with pytest.raises(IndexError):
    train[3]
  with pytest.raises(ValueError,
                     match=r"split: expected one of \('train', 'val', 'valid', 'test'\)"):
    captions.read_split("coco_captions", "restval")
  assert captions.coco_tokens("A dog's bed, 2 cats.") == "a dog's bed 2 cats"


def test_coco_without_tensorflow_says_so(monkeypatch):
  def data_source(name, split, data_dir):
    raise ModuleNotFoundError("No module named 'tensorflow'")
  monkeypatch.setattr(captions.tfds, "data_source", data_source)
  with pytest.raises(ImportError, match="needs TensorFlow"):
    captions.read_split("coco_captions", "test")
