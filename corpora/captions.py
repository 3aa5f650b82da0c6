"""Image captioning corpora (an image in, a sentence out), offline, as TFDS.

  examples = captions.read_split("shapes", "train")   # [CaptionExample]
  examples[0].image        # [64, 64, 3] uint8
  examples[0].captions     # ('a small red circle left of a blue square', ...)

Two generated configs (`CONFIGS`), built once from fixed seeds:

'shapes': scenes of 1-4 objects (uniform) on a 64x64 RGB canvas. An object
(`SceneObject`) has a shape (circle, square, triangle), a colour (red, green,
blue, yellow, purple; fixed RGB values in `COLOURS`), a size (small: radius
5 px, large: 9 px), a fill (solid, or striped: bands of `STRIPE` rows of
colour and background) and a cell of a 3x3 grid (~21 px cells, at most one
object a cell). Objects are drawn in the scene's order at their cell centre
jittered by up to `JITTER` px; with probability `SPILL_P` a large object
next to an occupied cell is pushed `SPILL` px towards it, over the cell edge,
so it may cover part of its neighbour. Every object keeps at least
`MIN_VISIBLE` of its painted pixels visible (placements are drawn again until
it does; the last try uses the exact cell centres, where nothing overlaps),
and its centre stays in its own cell. Background: a uniform grey level in
200..255 per pixel plus Gaussian noise (sd 3) per channel.
Captions (`describe`): 5 references per image from a small grammar, lower
case, tokens separated by single spaces, no final period:
  one object:    'a small red circle', 'there is a little striped red circle',
                 'a red circle at the top left'
  two objects:   'a red circle left of a big blue square', 'a blue square
                 to the right of a red circle', 'a red circle and a blue square',
                 'two red circles' (same colour and shape)
  three or four: 'two green triangles , a red circle and a blue square',
                 'a red circle above a green triangle and a blue square
                 below a red circle'
Synonyms: small/little, large/big, below/under, 'left of'/'to the left of'.
Relations are between grid cells: left/right compare columns, above/below
rows. A phrase 'a ...' means at least one object matches it; 'two ...' means
exactly two do; in a relation the phrases name the objects uniquely by
adding size, then fill, when the scene has several of that colour and shape.
`parse_caption` and `caption_is_true` are an independent checker of this
grammar (own lexicon, own parser; none of the generator's code).
Splits: 'train' 8,000, 'valid' 1,000, 'test' 1,000, 'compositional_test'
1,000. No (colour, shape) pair of `HELD_OUT` occurs in train/valid/test
scenes (objects draw their pair uniformly from the other 10); every
compositional_test scene has exactly one object with a held-out pair (drawn
uniformly from the 5), the others from the 10. A train/valid/test scene goes
to the split of its sha1 bucket (`scene_split`: 80/10/10 by the sha1 of the
scene's canonical JSON, objects sorted by cell), so no scene is in two
splits; within a split a scene may repeat (there are only 360 one-object
scenes) with another rendering and other references.

'digits': scikit-learn's 1,797 8x8 handwritten digits (16 grey levels,
`sklearn.datasets.load_digits`), scaled to 0..255 (round(v * 255 / 16)).
The images are split first, per digit class by a seeded permutation:
round(70%) train, round(85%) - round(70%) valid, the rest test (1,258 / 270 /
269). An example is a number: its digit count k uniform in 1..4, then n
uniform over the k-digit numbers (0..9 for k = 1); each digit drawn as a
random image of that digit from the split's own images, side by side on an
[8, 32] canvas (right-padded with zeros), upscaled x2 (nearest) to
[16, 64, 1] uint8. Caption: one reference, `number_words(n)` in British
English ('three hundred and forty one', 'one thousand and five'). Sizes:
train 20,000, valid 2,000, test 2,000; valid and test images are never seen
in train.

Seeds: the examples of config C, split S come from
np.random.default_rng([20240601, C, S]) (C: 0 shapes, 1 digits; S: the
split's position in SPLITS[C]); the digit images are split with
np.random.default_rng(1797). Every machine builds the same files.

Records: 'image' (uint8 tensor, zlib), 'captions' (references joined by
newlines), 'scene' (JSON: shapes {"objects": [{"shape", "colour", "size",
"fill", "row", "col"}]}; digits {"number", "digit_images": indices into
load_digits()}), 'num_objects' (objects; digits), 'index'. Built once under
<data_dir>/captions/<config>/1.0.0; `info.metadata` holds the split rule and
each split's count and sha256, checked on every read; damaged files are
rebuilt once (corpora/store.py).

'coco_captions' (TFDS, Karpathy & Li splits; needs TensorFlow and the
prepared dataset): 'train' is TFDS 'train' + 'restval' (113,287 images),
'val' (alias 'valid') and 'test' 5,000 each; images as stored (variable
size), captions lower-cased and tokenised into words ([a-z0-9]+ with inner
apostrophes; punctuation dropped). It is read lazily (`CocoExamples`).

`python -m corpora.captions --stats` prints sizes, caption lengths,
vocabularies and object counts per split; `save_grid` draws examples.
"""

from __future__ import annotations

import collections
import collections.abc
import dataclasses
import hashlib
import json
import os
import re
import textwrap
from typing import Any, Sequence

import numpy as np
import tensorflow_datasets as tfds

from corpora import store
from models.checks import check_one_of

CONFIGS = ("shapes", "digits")
SPLITS = {"shapes": ("train", "valid", "test", "compositional_test"),
          "digits": ("train", "valid", "test")}
SPLIT_SIZES = {"shapes": {"train": 8_000, "valid": 1_000, "test": 1_000,
                          "compositional_test": 1_000},
               "digits": {"train": 20_000, "valid": 2_000, "test": 2_000}}
SPLIT_RULES = {
    "shapes": "shapes v1: seeds [20240601, 0, split]; sha1 scene buckets 80/10/10; "
              "held-out pairs only in compositional_test, one per scene",
    "digits": "digits v1: images split per class by seed 1797 at 70%/85%; "
              "seeds [20240601, 1, split]; 1-4 digits uniform"}
IMAGE_SHAPES = {"shapes": (64, 64, 3), "digits": (16, 64, 1)}
COCO = "coco_captions"
# Our split -> the TFDS splits it concatenates (Karpathy & Li 2015).
COCO_SPLITS = {"train": ("train", "restval"), "val": ("val",), "valid": ("val",),
               "test": ("test",)}
_DATA_SEED = 20240601
_DIGIT_SPLIT_SEED = 1797


@dataclasses.dataclass(frozen=True, eq=False)
class CaptionExample:
  """An image and its reference captions.

  image: [H, W, C] uint8 (shapes 64x64x3, digits 16x64x1, coco as stored).
  captions: the references, lower-case, tokens separated by single spaces.
  scene: JSON of the scene (shapes), of {"number", "digit_images"} (digits)
    or of {"image_id", "filename", "object_labels"} (coco).
  num_objects: shapes 1-4; digits the number of digits; coco annotated boxes.
  """
  image: np.ndarray
  captions: tuple[str, ...]
  scene: str
  num_objects: int

  def __eq__(self, other) -> bool:
    if not isinstance(other, CaptionExample):
      return NotImplemented
    return (self.image.dtype == other.image.dtype
            and np.array_equal(self.image, other.image)
            and (self.captions, self.scene, self.num_objects)
            == (other.captions, other.scene, other.num_objects))


# ----------------------------------------------------------------------------
# Shapes: scenes.

CANVAS = 64
GRID = 3
CELL = CANVAS / GRID                 # ~21.3 px
MAX_OBJECTS = 4
SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 230),
           "yellow": (235, 205, 30), "purple": (150, 50, 180)}
OBJECT_SIZES = ("small", "large")
FILLS = ("solid", "striped")
HELD_OUT = frozenset({("red", "triangle"), ("blue", "circle"), ("yellow", "square"),
                      ("green", "square"), ("purple", "circle")})   # (colour, shape)
RADIUS = {"small": 5.0, "large": 9.0}   # px from the centre to the edge
STRIPE = 2           # rows per band of a striped fill
JITTER = 2.0         # px, uniform, each axis
SPILL_P = 0.3        # probability a large object is pushed towards a neighbour
SPILL = 6.0          # px
MIN_VISIBLE = 0.6    # of an object's painted pixels
_PLACEMENT_TRIES = 4

_ALLOWED_PAIRS = tuple((c, s) for c in COLOURS for s in SHAPES if (c, s) not in HELD_OUT)
_HELD_OUT_PAIRS = tuple(sorted(HELD_OUT))


@dataclasses.dataclass(frozen=True)
class SceneObject:
  """One object: its attributes and its grid cell (row 0 top, col 0 left)."""
  shape: str
  colour: str
  size: str
  fill: str
  row: int
  col: int

  def __post_init__(self):
    check_one_of("shape", self.shape, SHAPES)
    check_one_of("colour", self.colour, COLOURS)
    check_one_of("size", self.size, OBJECT_SIZES)
    check_one_of("fill", self.fill, FILLS)
    check_one_of("row", self.row, range(GRID))
    check_one_of("col", self.col, range(GRID))


@dataclasses.dataclass(frozen=True)
class Scene:
  """1-4 objects in distinct cells, in drawing order (later ones on top)."""
  objects: tuple[SceneObject, ...]

  def __post_init__(self):
    if not 1 <= len(self.objects) <= MAX_OBJECTS:
      raise ValueError(f"objects: expected 1 to {MAX_OBJECTS}, got {len(self.objects)}")
    cells = [(o.row, o.col) for o in self.objects]
    if len(set(cells)) != len(cells):
      raise ValueError(f"objects: two objects share a cell in {cells}")

  def to_json(self) -> str:
    return json.dumps({"objects": [dataclasses.asdict(o) for o in self.objects]},
                      sort_keys=True, separators=(",", ":"))

  @classmethod
  def from_json(cls, text: str) -> "Scene":
    return cls(tuple(SceneObject(**o) for o in json.loads(text)["objects"]))


def sample_scene(rng: np.random.Generator, *, compositional: bool = False) -> Scene:
  """A random scene: 1-4 objects in distinct cells, (colour, shape) pairs
  uniform over the allowed ones; `compositional`: one object (at a random
  position in the drawing order) gets a held-out pair instead."""
  n = int(rng.integers(1, MAX_OBJECTS + 1))
  cells = rng.choice(GRID * GRID, size=n, replace=False)
  pairs = [_ALLOWED_PAIRS[int(i)] for i in rng.integers(len(_ALLOWED_PAIRS), size=n)]
  if compositional:
    pairs[int(rng.integers(n))] = _HELD_OUT_PAIRS[int(rng.integers(len(_HELD_OUT_PAIRS)))]
  sizes = rng.integers(len(OBJECT_SIZES), size=n)
  fills = rng.integers(len(FILLS), size=n)
  return Scene(tuple(
      SceneObject(shape, colour, OBJECT_SIZES[int(s)], FILLS[int(f)],
                  int(cell) // GRID, int(cell) % GRID)
      for (colour, shape), cell, s, f in zip(pairs, cells, sizes, fills)))


def scene_split(scene: Scene) -> str:
  """'train', 'valid' or 'test': the sha1 bucket (0..99) of the scene's JSON
  with its objects sorted by cell, cut at 80 and 90."""
  objects = sorted(scene.objects, key=lambda o: (o.row, o.col))
  canonical = Scene(tuple(objects)).to_json()
  bucket = int(hashlib.sha1(canonical.encode("utf-8")).hexdigest()[:8], 16) % 100
  return "train" if bucket < 80 else "valid" if bucket < 90 else "test"


# ----------------------------------------------------------------------------
# Shapes: rendering.

_YY, _XX = np.mgrid[0:CANVAS, 0:CANVAS].astype(np.float32)
_STRIPE_ROWS = ((np.arange(CANVAS) // STRIPE) % 2 == 0)[:, None]


@dataclasses.dataclass(frozen=True, eq=False)
class Rendering:
  """image [64, 64, 3] uint8; masks [N, 64, 64] bool, the pixels each object
  paints (a striped one: its coloured bands); visible [N], the fraction of
  each object's painted pixels that no later object covers."""
  image: np.ndarray
  masks: np.ndarray
  visible: np.ndarray


def shape_mask(shape: str, cy: float, cx: float, radius: float) -> np.ndarray:
  """[64, 64] bool: a circle of `radius`, a square of half-side 0.8 radius,
  or an upward triangle of height and base 2 radius, centred at (cy, cx)."""
  dy, dx = _YY - cy, _XX - cx
  if shape == "circle":
    return dy ** 2 + dx ** 2 <= radius ** 2
  if shape == "square":
    return np.maximum(np.abs(dy), np.abs(dx)) <= 0.8 * radius
  if shape == "triangle":
    return (np.abs(dy) <= radius) & (np.abs(dx) <= (dy + radius) / 2)
  raise ValueError(f"shape: expected one of {SHAPES}, got {shape!r}")


def cell_centre(row: int, col: int) -> tuple[float, float]:
  return (row + 0.5) * CELL, (col + 0.5) * CELL


def _centre(obj: SceneObject, occupied: set, rng: np.random.Generator,
            exact: bool) -> tuple[float, float]:
  """The object's centre: its cell centre, jittered and maybe spilled towards
  an occupied neighbour (not when `exact`), kept on the canvas."""
  cy, cx = cell_centre(obj.row, obj.col)
  if not exact:
    cy += rng.uniform(-JITTER, JITTER)
    cx += rng.uniform(-JITTER, JITTER)
    if obj.size == "large" and rng.random() < SPILL_P:
      towards = [(dr, dc) for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
                 if (obj.row + dr, obj.col + dc) in occupied]
      if towards:
        dr, dc = towards[int(rng.integers(len(towards)))]
        cy, cx = cy + dr * SPILL, cx + dc * SPILL
  r = RADIUS[obj.size]
  return float(np.clip(cy, r, CANVAS - 1 - r)), float(np.clip(cx, r, CANVAS - 1 - r))


def _background(rng: np.random.Generator) -> np.ndarray:
  grey = rng.integers(200, 256, size=(CANVAS, CANVAS, 1)).astype(np.float32)
  noise = rng.normal(0.0, 3.0, size=(CANVAS, CANVAS, 3))
  return np.clip(np.rint(grey + noise), 0, 255).astype(np.uint8)


def render_scene(scene: Scene, rng: np.random.Generator) -> Rendering:
  """The scene drawn on a noisy background (see the module docstring)."""
  image = _background(rng)
  occupied = {(o.row, o.col) for o in scene.objects}
  for attempt in range(_PLACEMENT_TRIES):
    exact = attempt == _PLACEMENT_TRIES - 1
    masks = []
    for obj in scene.objects:
      mask = shape_mask(obj.shape, *_centre(obj, occupied, rng, exact), RADIUS[obj.size])
      masks.append(mask & _STRIPE_ROWS if obj.fill == "striped" else mask)
    owner = np.full((CANVAS, CANVAS), -1)
    for k, mask in enumerate(masks):
      owner[mask] = k
    visible = np.array([(owner == k).sum() / m.sum() for k, m in enumerate(masks)])
    if visible.min() >= MIN_VISIBLE:
      break
  for obj, mask in zip(scene.objects, masks):
    image[mask] = COLOURS[obj.colour]
  return Rendering(image, np.stack(masks), visible)


def render(scene: Scene, rng: np.random.Generator) -> np.ndarray:
  """[64, 64, 3] uint8: `render_scene(scene, rng).image`."""
  return render_scene(scene, rng).image


# ----------------------------------------------------------------------------
# Shapes: captions (the generator).

_SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}
_COUNT_WORDS = {2: "two", 3: "three", 4: "four"}
_RELATION_WORDS = {"left": ("left of", "to the left of"),
                   "right": ("right of", "to the right of"),
                   "above": ("above",), "below": ("below", "under")}
_ROW_WORDS = ("top", "", "bottom")
_COL_WORDS = ("left", "", "right")
_DESCRIBE_TRIES = 100


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
  return options[int(rng.integers(len(options)))]


def _place_words(obj: SceneObject) -> str:
  """'at the top left', 'at the top', 'at the centre', ..."""
  words = " ".join(w for w in (_ROW_WORDS[obj.row], _COL_WORDS[obj.col]) if w)
  return f"at the {words or 'centre'}"


def _object_phrase(obj: SceneObject, rng: np.random.Generator,
                   scene: Scene | None = None) -> str:
  """'a [size] [fill] colour shape'. Size and fill are optional; given the
  scene, they are added as needed to tell `obj` from the scene's other
  objects of its colour and shape."""
  twins = [] if scene is None else [
      o for o in scene.objects if o != obj and (o.colour, o.shape) == (obj.colour, obj.shape)]
  words = ["a"]
  if twins or rng.random() < 0.5:
    words.append(_pick(rng, _SIZE_WORDS[obj.size]))
  if any(o.size == obj.size for o in twins) or rng.random() < 0.3:
    words.append(obj.fill)
  return " ".join(words + [obj.colour, obj.shape])


def _group_phrase(group: Sequence[SceneObject], rng: np.random.Generator) -> str:
  """The objects of one colour and shape: 'two [size] [fill] green triangles'
  (size and fill only when all share them), or an object phrase for one."""
  if len(group) == 1:
    return _object_phrase(group[0], rng)
  first = group[0]
  words = [_COUNT_WORDS[len(group)]]
  if all(o.size == first.size for o in group) and rng.random() < 0.5:
    words.append(_pick(rng, _SIZE_WORDS[first.size]))
  if all(o.fill == first.fill for o in group) and rng.random() < 0.3:
    words.append(first.fill)
  return " ".join(words + [first.colour, first.shape + "s"])


def _relations(a: SceneObject, b: SceneObject) -> list[str]:
  """The relations of a to b that hold on the grid."""
  return ([r for r, holds in (("left", a.col < b.col), ("right", a.col > b.col),
                              ("above", a.row < b.row), ("below", a.row > b.row))
           if holds])


def _relation_clause(scene: Scene, pair: tuple[int, int], rng: np.random.Generator) -> str:
  a, b = scene.objects[pair[0]], scene.objects[pair[1]]
  relation = _pick(rng, _RELATION_WORDS[_pick(rng, _relations(a, b))])
  return f"{_object_phrase(a, rng, scene)} {relation} {_object_phrase(b, rng, scene)}"


def _join(items: Sequence[str]) -> str:
  """'A', 'A and B', 'A , B and C'."""
  if len(items) == 1:
    return items[0]
  return " , ".join(items[:-1]) + " and " + items[-1]


def _pairs(n: int, rng: np.random.Generator, count: int) -> list[tuple[int, int]]:
  """`count` random pairs (i, j) of distinct indices below n, no two of them
  the same two indices."""
  chosen: list[tuple[int, int]] = []
  while len(chosen) < count:
    i, j = (int(k) for k in rng.choice(n, size=2, replace=False))
    if (i, j) not in chosen and (j, i) not in chosen:
      chosen.append((i, j))
  return chosen


def _caption(scene: Scene, rng: np.random.Generator) -> str:
  """One random reference for the scene."""
  objects = scene.objects
  if len(objects) == 1:
    phrase = _object_phrase(objects[0], rng)
    form = int(rng.integers(4))
    place = f" {_place_words(objects[0])}" if form >= 2 else ""
    return ("there is " if form % 2 else "") + phrase + place
  groups: dict[tuple[str, str], list[SceneObject]] = {}
  for obj in objects:
    groups.setdefault((obj.colour, obj.shape), []).append(obj)
  forms = (["relation"] * 3 + ["there relation", "list", "list", "placed"]
           if len(objects) == 2 else
           ["relation"] * 2 + ["relations", "list", "list", "list", "placed"])
  form = _pick(rng, forms)
  if form in ("relation", "there relation", "relations"):
    pairs = _pairs(len(objects), rng, 2 if form == "relations" else 1)
    text = " and ".join(_relation_clause(scene, pair, rng) for pair in pairs)
    return ("there is " if form == "there relation" else "") + text
  if form == "placed":
    order = rng.permutation(len(objects))
    return _join([f"{_object_phrase(objects[k], rng)} {_place_words(objects[k])}"
                  for k in order])
  items = [_group_phrase(g, rng) for g in groups.values()]
  items = [items[k] for k in rng.permutation(len(items))]
  text = _join(items)
  if rng.random() < 0.3:
    text = ("there is " if items[0].startswith("a ") else "there are ") + text
  return text


def describe(scene: Scene, rng: np.random.Generator, n: int = 5) -> list[str]:
  """n references for the scene, distinct where the grammar allows (after
  100 draws the distinct ones found are repeated in turn)."""
  found: list[str] = []
  for _ in range(_DESCRIBE_TRIES):
    caption = _caption(scene, rng)
    if caption not in found:
      found.append(caption)
    if len(found) == n:
      return found
  return [found[k % len(found)] for k in range(n)]


# ----------------------------------------------------------------------------
# Shapes: the independent checker (its own lexicon and parser).

_LEX_DETERMINERS = {"a": None, "two": 2, "three": 3, "four": 4}
_LEX_ADJECTIVES = {
    "small": ("size", "small"), "little": ("size", "small"),
    "large": ("size", "large"), "big": ("size", "large"),
    "solid": ("fill", "solid"), "striped": ("fill", "striped"),
    "red": ("colour", "red"), "green": ("colour", "green"), "blue": ("colour", "blue"),
    "yellow": ("colour", "yellow"), "purple": ("colour", "purple")}
_LEX_NOUNS = {"circle": ("circle", False), "circles": ("circle", True),
              "square": ("square", False), "squares": ("square", True),
              "triangle": ("triangle", False), "triangles": ("triangle", True)}
_LEX_RELATIONS = (  # longest first
    (("to", "the", "left", "of"), "left"), (("to", "the", "right", "of"), "right"),
    (("left", "of"), "left"), (("right", "of"), "right"),
    (("above",), "above"), (("below",), "below"), (("under",), "below"))
_LEX_PLACE_ROWS = {"top": 0, "bottom": 2}
_LEX_PLACE_COLS = {"left": 0, "right": 2}


@dataclasses.dataclass(frozen=True)
class ObjectClaim:
  """count None: at least one object matches; k: exactly k do. An attribute
  or place of None is not claimed; place is (row, col)."""
  count: int | None
  colour: str | None
  shape: str
  size: str | None = None
  fill: str | None = None
  place: tuple[int, int] | None = None


@dataclasses.dataclass(frozen=True)
class RelationClaim:
  """Some object matching `subject` is `relation` (left, right, above,
  below) of another object matching `object`."""
  subject: ObjectClaim
  relation: str
  object: ObjectClaim


def _parse_place(tokens: Sequence[str], pos: int) -> tuple[tuple[int, int], int]:
  """After 'at the': 'centre', or [top|bottom] [left|right] (at least one)."""
  if pos < len(tokens) and tokens[pos] in ("centre", "center", "middle"):
    return (1, 1), pos + 1
  row = col = None
  if pos < len(tokens) and tokens[pos] in _LEX_PLACE_ROWS:
    row, pos = _LEX_PLACE_ROWS[tokens[pos]], pos + 1
  if pos < len(tokens) and tokens[pos] in _LEX_PLACE_COLS:
    col, pos = _LEX_PLACE_COLS[tokens[pos]], pos + 1
  if row is None and col is None:
    raise ValueError(f"caption: no place after 'at the' at token {pos}")
  return (1 if row is None else row, 1 if col is None else col), pos


def _parse_phrase(tokens: Sequence[str], pos: int) -> tuple[ObjectClaim, int]:
  """determiner, adjectives (any order, each kind once), noun, [at the PLACE]."""
  if pos >= len(tokens) or tokens[pos] not in _LEX_DETERMINERS:
    raise ValueError(f"caption: expected a determiner at token {pos} of {tokens}")
  count = _LEX_DETERMINERS[tokens[pos]]
  pos += 1
  attributes: dict[str, str] = {}
  while pos < len(tokens) and tokens[pos] in _LEX_ADJECTIVES:
    kind, value = _LEX_ADJECTIVES[tokens[pos]]
    if kind in attributes:
      raise ValueError(f"caption: two {kind} words in one phrase: {tokens}")
    attributes[kind] = value
    pos += 1
  if pos >= len(tokens) or tokens[pos] not in _LEX_NOUNS:
    raise ValueError(f"caption: expected a shape at token {pos} of {tokens}")
  shape, plural = _LEX_NOUNS[tokens[pos]]
  pos += 1
  if plural != (count is not None):
    raise ValueError(f"caption: number disagreement in {tokens}")
  place = None
  if tuple(tokens[pos:pos + 2]) == ("at", "the"):
    if count is not None:
      raise ValueError(f"caption: a counted phrase cannot have a place: {tokens}")
    place, pos = _parse_place(tokens, pos + 2)
  return ObjectClaim(count, attributes.get("colour"), shape, attributes.get("size"),
                     attributes.get("fill"), place), pos


def _parse_clause(tokens: Sequence[str]):
  subject, pos = _parse_phrase(tokens, 0)
  if pos == len(tokens):
    return subject
  for words, relation in _LEX_RELATIONS:
    if tuple(tokens[pos:pos + len(words)]) == words:
      obj, end = _parse_phrase(tokens, pos + len(words))
      if end != len(tokens):
        raise ValueError(f"caption: unexpected {tokens[end]!r} in {tokens}")
      if subject.count is not None or obj.count is not None:
        raise ValueError(f"caption: a relation needs phrases with 'a': {tokens}")
      return RelationClaim(subject, relation, obj)
  raise ValueError(f"caption: expected a relation at {tokens[pos]!r} in {tokens}")


def parse_caption(caption: str) -> list[ObjectClaim | RelationClaim]:
  """The claims of a caption of the shapes grammar, one per clause (clauses
  are separated by ',' and 'and'; a leading 'there is' / 'there are' is
  dropped). ValueError for text outside the grammar."""
  tokens = caption.split()
  if tokens[:2] in (["there", "is"], ["there", "are"]):
    tokens = tokens[2:]
  clauses: list[list[str]] = [[]]
  for token in tokens:
    if token in (",", "and"):
      clauses.append([])
    else:
      clauses[-1].append(token)
  if any(not clause for clause in clauses):
    raise ValueError(f"caption: an empty clause in {caption!r}")
  return [_parse_clause(clause) for clause in clauses]


def _matches(obj: SceneObject, claim: ObjectClaim) -> bool:
  return (obj.shape == claim.shape
          and claim.colour in (None, obj.colour) and claim.size in (None, obj.size)
          and claim.fill in (None, obj.fill)
          and claim.place in (None, (obj.row, obj.col)))


_LEX_HOLDS = {"left": lambda a, b: a.col < b.col, "right": lambda a, b: a.col > b.col,
              "above": lambda a, b: a.row < b.row, "below": lambda a, b: a.row > b.row}


def _holds(claim: ObjectClaim | RelationClaim, objects: Sequence[SceneObject]) -> bool:
  if isinstance(claim, ObjectClaim):
    count = sum(_matches(o, claim) for o in objects)
    return count >= 1 if claim.count is None else count == claim.count
  holds = _LEX_HOLDS[claim.relation]
  return any(a != b and _matches(a, claim.subject) and _matches(b, claim.object)
             and holds(a, b) for a in objects for b in objects)


def caption_is_true(caption: str, scene: Scene | str) -> bool:
  """True if the caption parses (`parse_caption`) and every claim holds in
  the scene (a Scene or its JSON); False for text outside the grammar."""
  if isinstance(scene, str):
    scene = Scene.from_json(scene)
  try:
    claims = parse_caption(caption)
  except ValueError:
    return False
  return all(_holds(claim, scene.objects) for claim in claims)


# ----------------------------------------------------------------------------
# Digits.

DIGIT_SIZE = 8
MAX_DIGITS = 4
DIGIT_SCALE = 2
DIGIT_FRACTIONS = (0.7, 0.15, 0.15)

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
         "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
         "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty",
         "ninety")


def number_words(n: int) -> str:
  """0..9999 in British English words without hyphens: 341 -> 'three hundred
  and forty one', 1005 -> 'one thousand and five', 2000 -> 'two thousand'."""
  if not isinstance(n, (int, np.integer)) or not 0 <= n <= 9999:
    raise ValueError(f"n: expected an integer in 0..9999, got {n!r}")
  if n == 0:
    return "zero"
  thousands, rest = divmod(int(n), 1000)
  hundreds, below = divmod(rest, 100)
  words = []
  if thousands:
    words += [_ONES[thousands], "thousand"]
  if hundreds:
    words += [_ONES[hundreds], "hundred"]
  if below:
    if words:
      words.append("and")
    tens, ones = divmod(below, 10)
    if below < 20:
      words.append(_ONES[below])
    else:
      words += [_TENS[tens]] + ([_ONES[ones]] if ones else [])
  return " ".join(words)


_WORD_UNITS = {w: k for k, w in enumerate(_ONES) if 1 <= k <= 9}
_WORD_BELOW_20 = {w: k for k, w in enumerate(_ONES) if k >= 1}
_WORD_TENS = {w: 10 * k for k, w in enumerate(_TENS) if w}


def _below_hundred(tokens: Sequence[str]) -> int | None:
  """1..99 from 'seven', 'seventeen', 'seventy' or 'seventy seven'."""
  if len(tokens) == 1:
    return _WORD_BELOW_20.get(tokens[0], _WORD_TENS.get(tokens[0]))
  if len(tokens) == 2 and tokens[0] in _WORD_TENS and tokens[1] in _WORD_UNITS:
    return _WORD_TENS[tokens[0]] + _WORD_UNITS[tokens[1]]
  return None


def words_number(text: str) -> int | None:
  """The inverse of `number_words`: the number (0..9999) whose words `text`
  is, whitespace aside; None for anything else, including non-canonical
  forms ('one hundred forty one', 'ten hundred')."""
  tokens = text.split()
  if tokens == ["zero"]:
    return 0
  total, pos = 0, 0
  for word, scale in (("thousand", 1000), ("hundred", 100)):
    if len(tokens) >= pos + 2 and tokens[pos + 1] == word and tokens[pos] in _WORD_UNITS:
      total += scale * _WORD_UNITS[tokens[pos]]
      pos += 2
  rest = tokens[pos:]
  if not rest:
    return total or None
  if total:
    if rest[0] != "and":
      return None
    rest = rest[1:]
  below = _below_hundred(rest)
  return None if below is None else total + below


@dataclasses.dataclass(frozen=True)
class DigitImages:
  """images [1797, 8, 8] uint8 in 0..255; labels [1797] int64."""
  images: np.ndarray
  labels: np.ndarray


def load_digit_images() -> DigitImages:
  """scikit-learn's digits, 0..16 scaled to 0..255 (round(v * 255 / 16))."""
  try:
    from sklearn import datasets  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("the 'digits' captions need scikit-learn==1.9.1 "
                      "(pip install -r requirements.txt)") from e
  digits = store.read_source("captions/digits", datasets.load_digits)
  images = np.rint(digits.images * 255.0 / 16.0).astype(np.uint8)
  return DigitImages(images, np.asarray(digits.target, np.int64))


def split_digit_images(labels: np.ndarray) -> dict[str, np.ndarray]:
  """{split: sorted image indices}: per digit class, a permutation by
  default_rng(1797) cut at round(70%) and round(85%) of the class."""
  rng = np.random.default_rng(_DIGIT_SPLIT_SEED)
  parts: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS["digits"]}
  for digit in range(10):
    chosen = np.flatnonzero(labels == digit)
    chosen = chosen[rng.permutation(len(chosen))]
    first = round(DIGIT_FRACTIONS[0] * len(chosen))
    second = round((DIGIT_FRACTIONS[0] + DIGIT_FRACTIONS[1]) * len(chosen))
    for split, part in zip(SPLITS["digits"], np.split(chosen, [first, second])):
      parts[split].append(part)
  return {split: np.sort(np.concatenate(p)) for split, p in parts.items()}


def compose_digits(digit_images: np.ndarray) -> np.ndarray:
  """[k, 8, 8] uint8 (k <= 4) -> [16, 64, 1] uint8: side by side from the
  left on an [8, 32] zero canvas, upscaled x2 (nearest)."""
  canvas = np.zeros((DIGIT_SIZE, DIGIT_SIZE * MAX_DIGITS), np.uint8)
  for k, image in enumerate(digit_images):
    canvas[:, k * DIGIT_SIZE:(k + 1) * DIGIT_SIZE] = image
  big = np.repeat(np.repeat(canvas, DIGIT_SCALE, axis=0), DIGIT_SCALE, axis=1)
  return big[..., None]


def _digit_examples(split: str, size: int, digits: DigitImages) -> list[CaptionExample]:
  pool = split_digit_images(digits.labels)[split]
  by_digit = [pool[digits.labels[pool] == d] for d in range(10)]
  rng = np.random.default_rng([_DATA_SEED, 1, SPLITS["digits"].index(split)])
  out = []
  for _ in range(size):
    k = int(rng.integers(1, MAX_DIGITS + 1))
    n = int(rng.integers(0 if k == 1 else 10 ** (k - 1), 10 ** k))
    chosen = [int(_pick(rng, by_digit[int(c)])) for c in str(n)]
    out.append(CaptionExample(
        image=compose_digits(digits.images[chosen]), captions=(number_words(n),),
        scene=json.dumps({"digit_images": chosen, "number": n}, sort_keys=True),
        num_objects=k))
  return out


# ----------------------------------------------------------------------------
# Generation, the TFDS builder and the readers.

def _shapes_examples(split: str, size: int) -> list[CaptionExample]:
  rng = np.random.default_rng([_DATA_SEED, 0, SPLITS["shapes"].index(split)])
  compositional = split == "compositional_test"
  out = []
  while len(out) < size:
    scene = sample_scene(rng, compositional=compositional)
    if not compositional and scene_split(scene) != split:
      continue
    image = render(scene, rng)
    out.append(CaptionExample(image, tuple(describe(scene, rng)), scene.to_json(),
                              len(scene.objects)))
  return out


def generate_split(config: str, split: str, size: int | None = None,
                   digits: DigitImages | None = None) -> list[CaptionExample]:
  """The first `size` examples (default: the full split) of a split, exactly
  as the builder writes them (a smaller size gives a prefix)."""
  check_one_of("config", config, CONFIGS)
  check_one_of("split", split, SPLITS[config])
  size = SPLIT_SIZES[config][split] if size is None else size
  if config == "shapes":
    return _shapes_examples(split, size)
  return _digit_examples(split, size, digits or load_digit_images())


def fingerprint(examples: Sequence[CaptionExample]) -> str:
  """sha256 over one line per example: objects, image shape and sha256,
  scene, captions (JSON)."""
  return store.sha256_lines(
      f"{e.num_objects}\t{e.image.shape}\t{hashlib.sha256(e.image.tobytes()).hexdigest()}"
      f"\t{e.scene}\t{json.dumps(list(e.captions))}" for e in examples)


class Captions(tfds.core.GeneratorBasedBuilder):
  """Generated captioning corpora: 'shapes' scenes and 'digits' numbers."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "shapes 8k/1k/1k/1k, digits 20k/2k/2k."}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name="shapes", description="Scenes of 1-4 shapes"),
      tfds.core.BuilderConfig(name="digits", description="Numbers in handwritten digits")]

  def __init__(self, *, max_examples: int = 0, **kwargs):
    """max_examples > 0 caps every split (a small store, for tests)."""
    self.max_examples = max_examples
    super().__init__(**kwargs)

  def split_sizes(self) -> dict[str, int]:
    sizes = SPLIT_SIZES[self.builder_config.name]
    if self.max_examples:
      return {split: min(size, self.max_examples) for split, size in sizes.items()}
    return dict(sizes)

  def _info(self) -> tfds.core.DatasetInfo:
    return store.indexed_info(self, {
        "image": tfds.features.Tensor(shape=IMAGE_SHAPES[self.builder_config.name],
                                      dtype=np.uint8, encoding="zlib"),
        "captions": tfds.features.Text(),
        "scene": tfds.features.Text(),
        "num_objects": tfds.features.Scalar(dtype=np.int32)})

  def _split_generators(self, dl_manager):
    del dl_manager  # offline
    config = self.builder_config.name
    digits = load_digit_images() if config == "digits" else None
    splits = {split: generate_split(config, split, size, digits)
              for split, size in self.split_sizes().items()}
    self.info.metadata["split_rule"] = SPLIT_RULES[config]
    for split, examples in splits.items():
      self.info.metadata[split] = {"num_examples": len(examples),
                                   "sha256": fingerprint(examples)}
    return {split: self._generate_examples(examples) for split, examples in splits.items()}

  def _generate_examples(self, examples):
    for index, e in enumerate(examples):
      yield index, {"image": e.image, "captions": "\n".join(e.captions),
                    "scene": e.scene, "num_objects": e.num_objects, "index": index}


def _read_verified(builder, split: str) -> list[CaptionExample]:
  records, expected = store.stored_split(builder, split, SPLIT_RULES[builder.builder_config.name])
  examples = [CaptionExample(np.asarray(r["image"], np.uint8),
                             tuple(store.text(r["captions"]).split("\n")),
                             store.text(r["scene"]), int(r["num_objects"]))
              for r in records]
  if (len(examples) != expected["num_examples"]
      or len(examples) != builder.split_sizes()[split]
      or fingerprint(examples) != expected["sha256"]):
    raise store.CorpusError("the examples read back differ from those written")
  return examples


_COCO_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def coco_tokens(text: str) -> str:
  """A COCO caption lower-cased, as its words separated by single spaces
  (punctuation dropped): 'A dog, running.' -> 'a dog running'."""
  return " ".join(_COCO_TOKEN.findall(text.lower()))


def coco_example(record) -> CaptionExample:
  """A coco_captions record (tfds.data_source) as a CaptionExample."""
  labels = [int(label) for label in record["objects"]["label"]]
  scene = json.dumps({"filename": store.text(record["image/filename"]),
                      "image_id": int(record["image/id"]), "object_labels": labels},
                     sort_keys=True)
  return CaptionExample(
      np.asarray(record["image"], np.uint8),
      tuple(coco_tokens(store.text(t)) for t in record["captions"]["text"]),
      scene, len(labels))


class CocoExamples(collections.abc.Sequence):
  """The examples of a coco_captions split, decoded when indexed (the
  train split's 113k images do not fit in memory); a slice is a list."""

  def __init__(self, sources: Sequence[Any], limit: int = 0):
    self._sources = list(sources)
    self._ends = np.cumsum([len(s) for s in self._sources])
    total = int(self._ends[-1]) if len(self._ends) else 0
    self._len = min(total, limit) if limit else total

  def __len__(self) -> int:
    return self._len

  def __getitem__(self, index):
    if isinstance(index, slice):
      return [self[i] for i in range(*index.indices(self._len))]
    if index < 0:
      index += self._len
    if not 0 <= index < self._len:
      raise IndexError(f"index {index} out of range for {self._len} examples")
    part = int(np.searchsorted(self._ends, index, side="right"))
    start = int(self._ends[part - 1]) if part else 0
    return coco_example(self._sources[part][index - start])


def _read_coco(split: str, data_dir: str, max_examples: int) -> CocoExamples:
  check_one_of("split", split, COCO_SPLITS, " (coco_captions)")
  try:
    sources = [tfds.data_source(COCO, split=part, data_dir=data_dir)
               for part in COCO_SPLITS[split]]
  except ImportError as e:
    raise ImportError(f"{COCO}: the TFDS COCO builder needs TensorFlow "
                      f"(pip install tensorflow): {e}") from e
  return CocoExamples(sources, max_examples)


def read_split(config: str, split: str, *, data_dir: str | None = None,
               max_examples: int = 0) -> Sequence[CaptionExample]:
  """The examples of a split, in a fixed order.

  Args:
    config: 'shapes' or 'digits' (built on first use, verified on every
      read, rebuilt once if damaged), or 'coco_captions' (TFDS, prepared).
    split: one of SPLITS[config]; coco: 'train' (train + restval), 'val'
      (or 'valid'), 'test'.
    data_dir: else $RNN_DATA_DIR, else ~/.cache/rnn_jax/tfds.
    max_examples: > 0 caps every split: for shapes and digits a separate
      small store under data_dir/captions_max_examples_N (tests); for coco
      the first N examples.

  Returns:
    A list of CaptionExample (coco: a `CocoExamples`, decoded on access).
  """
  import corpora  # pylint: disable=g-import-not-at-top
  check_one_of("config", config, CONFIGS + (COCO,))
  if max_examples < 0:
    raise ValueError(f"max_examples: expected >= 0, got {max_examples}")
  data_dir = corpora.resolve_data_dir(data_dir)
  if config == COCO:
    return _read_coco(split, data_dir, max_examples)
  check_one_of("split", split, SPLITS[config])
  root = (os.path.join(data_dir, f"captions_max_examples_{max_examples}")
          if max_examples else data_dir)
  return store.read_built(
      lambda: Captions(data_dir=root, config=config, file_format="array_record",
                       max_examples=max_examples),
      lambda builder: _read_verified(builder, split), name=f"{Captions.name}/{config}",
      path=os.path.join(root, Captions.name, config, str(Captions.VERSION)))


# ----------------------------------------------------------------------------
# A picture and statistics.

def save_grid(examples: Sequence[CaptionExample], path: str,
              captions_by_example: Sequence[Sequence[str]] | None = None,
              columns: int = 4) -> None:
  """A PNG of the images in a grid, each with its captions beneath
  (captions_by_example[i], e.g. a model's, else the references)."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  if not examples:
    raise ValueError("examples: expected at least one example")
  if captions_by_example is not None and len(captions_by_example) != len(examples):
    raise ValueError(f"captions_by_example: expected {len(examples)} entries, got "
                     f"{len(captions_by_example)}")
  columns = min(columns, len(examples))
  rows = -(-len(examples) // columns)
  texts = [list(captions_by_example[k] if captions_by_example is not None else e.captions)
           for k, e in enumerate(examples)]
  lines = max(sum(len(textwrap.wrap(t, 34)) or 1 for t in ts) for ts in texts)
  aspect = examples[0].image.shape[0] / examples[0].image.shape[1]
  figure = Figure(figsize=(2.8 * columns, rows * (2.8 * aspect + 0.4 + 0.14 * lines)),
                  layout="constrained")
  for k, (example, captions) in enumerate(zip(examples, texts)):
    axes = figure.add_subplot(rows, columns, k + 1)
    image = example.image
    axes.imshow(image[..., 0] if image.shape[-1] == 1 else image,
                cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=255)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_xlabel("\n".join(textwrap.fill(t, 34) for t in captions), fontsize=7)
  figure.savefig(path, dpi=100)


def split_stats(examples: Sequence[CaptionExample]) -> dict[str, Any]:
  """examples, caption length p50/p90/max (tokens, every reference), the
  references' vocabulary size and {num_objects: examples}."""
  from corpora import text_stats  # pylint: disable=g-import-not-at-top
  lengths = [len(c.split()) for e in examples for c in e.captions]
  vocabulary = {w for e in examples for c in e.captions for w in c.split()}
  pct = text_stats.length_percentiles(lengths)
  return {"examples": len(examples), "p50": pct["p50"], "p90": pct["p90"],
          "max": pct["max"], "vocabulary": len(vocabulary),
          "objects": dict(sorted(collections.Counter(e.num_objects for e in examples).items()))}


def held_out_counts(examples: Sequence[CaptionExample]) -> dict[str, int]:
  """{'colour shape': scenes containing the pair} for the HELD_OUT pairs."""
  counts = {f"{c} {s}": 0 for c, s in _HELD_OUT_PAIRS}
  for e in examples:
    pairs = {(o.colour, o.shape) for o in Scene.from_json(e.scene).objects}
    for c, s in pairs & HELD_OUT:
      counts[f"{c} {s}"] += 1
  return counts


def main(argv: Sequence[str] | None = None) -> None:
  from corpora import text_stats  # pylint: disable=g-import-not-at-top
  args = text_stats.parse_stats_flags("Statistics of the captioning corpora.", argv)
  print("| corpus | split | examples | caption tokens p50 / p90 / max | vocabulary "
        "| examples by objects |")
  print("|---|---|---|---|---|---|")
  held = {}
  for config in CONFIGS:
    for split in SPLITS[config]:
      examples = read_split(config, split, data_dir=args.data_dir)
      row = split_stats(examples)
      objects = ", ".join(f"{k}: {v:,}" for k, v in row["objects"].items())
      print(f"| {config} | {split} | {row['examples']:,} | {row['p50']} / {row['p90']} / "
            f"{row['max']} | {row['vocabulary']} | {objects} |")
      if config == "shapes" and split == "compositional_test":
        held = held_out_counts(examples)
  print("\nshapes compositional_test scenes containing each held-out pair:")
  for pair, count in held.items():
    print(f"  {pair}: {count:,}")


if __name__ == "__main__":
  main()
