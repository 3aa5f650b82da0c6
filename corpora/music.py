"""Bach chorales as piano rolls, offline: music21's bundled corpus, as TFDS.

  chorales = music.read_split("train", step="quarter", transpose="c")  # [Chorale]
  chorales[0].roll                 # [T, 88] uint8; column j is MIDI pitch 21 + j

Source: `music21==10.5.1` ships the chorales as MusicXML in its corpus.
`music21.corpus.chorales.Iterator` lists the 371 Riemenschneider numbers,
but 21 of them name a file that another number already names (bwv36.4-2
three times, 19 other files twice), so the corpus has 350 distinct chorales
(`chorale_names()`, in catalogue order). Every part of a score counts: 331
chorales have the four voices, 19 also carry instrumental parts (up to 15
parts in bwv190.7).

Piano rolls (`piano_roll`): frame t is 1 at pitch p when a note or chord
member of pitch p sounds at time t * step quarter notes (offset <= t * step <
offset + length, music21's offsets of the flattened score, in quarter
notes), so a note shorter than a step that starts between two frames is not
seen (an eighth on the off-beat at step 'quarter'). Ties need nothing
special: the tied notes fill consecutive frames, as a held note does.
Grace notes (zero length) are ignored. T = ceil(highestTime / step). Pickup
bars (238 chorales) start at offset 0 in music21, so a roll starts with the
pickup; 4 chorales start with a notated quarter rest, 6 end with rests. The
notes lie in MIDI 36..88 (31..93 transposed to C), the rolls at either step
in 36..86 (31..91): the E6s are sixteenths off the eighth grid (bwv248.23-2).
A pitch outside 21..108 is a `CorpusError` naming the chorale, never dropped.

Steps (`STEPS`): 'quarter' (1 quarter note a frame, as the JSB Chorales data
of Boulanger-Lewandowski et al. 2012) or 'eighth' (0.5).
Transpositions (`TRANSPOSITIONS`): 'none', or 'c': each chorale moved to C
major or A minor from music21's key estimate (`score.analyze('key')`,
Aarden-Essen key profiles) by the shortest interval, -6..+5 semitones, as
Boulanger-Lewandowski et al. 2012 did. The estimate finds 181 major and 169
minor keys; the shifts run from -5 to +5 (G major: +5, up a fourth).

Splits (`split_of_names`), in the proportions of the JSB Chorales split
(229 / 76 / 77 of 382 pieces): the distinct names ordered by (sha1 of the
UTF-8 name, name); the first round(n 229/382) go to 'train', the next
round(n 76/382) to 'valid', the rest to 'test', each split in that order.
For the 350 chorales: 210 / 70 / 70. Duplicates: two pairs of distinct files
give identical rolls at both steps (bwv62.6 = bwv274, bwv69.6 = bwv69.6-a),
and under 'c' a third pair does (bwv18.5-l = bwv18.5-w, one setting in two
keys); all are kept, each in the split its name falls in, which puts each
pair in two splits (bwv62.6 and bwv69.6-a in 'train', their twins in
'valid'; bwv18.5-l in 'valid', bwv18.5-w in 'test').

Built once per (step, transpose) as a TFDS ArrayRecord corpus
`bach_chorales/<step>_<transpose>` (records: 'name', 'steps' (T) and
'frames', each frame's MIDI pitches comma-joined, frames joined by ';');
`info.metadata` holds every split's count, frames and sha256, the split rule
and a fingerprint of the sources (the music21 version and the names),
checked on every read; damaged files are rebuilt once (corpora/store.py).

MIDI: `write_midi` and `read_midi_roll` round-trip a roll exactly; a run of
active frames of one pitch is one held note, so a roll cannot tell a held
note from a re-struck one. `roll_png` draws a roll.

`python -m corpora.music --stats` prints sizes, density, pitch range and
lengths per split, step and transposition.
"""

from __future__ import annotations

import collections
import dataclasses
import fractions
import functools
import hashlib
import math
import os
from typing import NamedTuple, Sequence

import numpy as np
import tensorflow_datasets as tfds

from corpora import store
from models.checks import check_one_of

PITCHES = range(21, 109)    # the 88 piano keys, MIDI numbers
NUM_PITCHES = len(PITCHES)
STEPS = {"quarter": 1.0, "eighth": 0.5}   # quarter notes per frame
TRANSPOSITIONS = ("none", "c")
SPLITS = ("train", "valid", "test")
# The JSB Chorales split of Boulanger-Lewandowski et al. 2012: 229 / 76 / 77.
JSB_SIZES = (229, 76, 77)
SPLIT_RULE = "distinct names by (sha1, name); cut at round(n 229/382), +round(n 76/382); v1"
PACKAGE_PIN = "10.5.1"


class SourceError(store.CorpusError, store.NoSourceData):
  """A chorale that cannot become a roll (a pitch off the keyboard, an
  unpitched note): rebuilding cannot help."""


@dataclasses.dataclass(frozen=True)
class Chorale:
  """A chorale's corpus name (or file path) and its [T, 88] uint8 roll."""
  name: str
  roll: np.ndarray

  def __eq__(self, other):
    """Same name and the same roll (shape, dtype and values)."""
    if not isinstance(other, Chorale):
      return NotImplemented
    return (self.name == other.name and self.roll.dtype == other.roll.dtype
            and self.roll.shape == other.roll.shape
            and bool(np.array_equal(self.roll, other.roll)))

  def __hash__(self):
    """Of the name and the roll's shape and bytes."""
    return hash((self.name, self.roll.shape, self.roll.tobytes()))


# ----------------------------------------------------------------------------
# Sources: music21's corpus.

def _music21():
  try:
    import music21  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"the chorales need the package music21=={PACKAGE_PIN} "
                      f"(pip install -r requirements.txt)") from e
  return music21


def chorale_names() -> list[str]:
  """The 350 distinct corpus names of music21's Bach chorales ('bach/bwv269'),
  in Riemenschneider order (a name's first number)."""
  music21 = _music21()
  names = music21.corpus.chorales.Iterator(returnType="filename")
  return list(dict.fromkeys(names))


def parse_chorale(name: str):
  """music21's Score of a corpus name or a file path; NoSourceData if music21
  cannot find or read it."""
  music21 = _music21()
  try:
    if os.path.isfile(name):
      return music21.converter.parse(name)
    return music21.corpus.parse(name)
  except (OSError, ValueError, music21.exceptions21.Music21Exception) as e:
    raise store.NoSourceData(f"bach_chorales: cannot read {name!r}: {e}") from e


def _label(score) -> str:
  """The corpus path or file of a score, for messages."""
  meta = score.metadata
  if meta is None:
    return "the score"
  return str(meta.corpusFilePath or meta.filePath or meta.title or "the score")


class _Note(NamedTuple):
  midi: int
  start: fractions.Fraction   # quarter notes
  end: fractions.Fraction


def _sounding_notes(score, label: str) -> list[_Note]:
  """Every note and chord member of the flattened score, grace notes left
  out; SourceError on an unpitched note or a microtone."""
  notes = []
  for element in score.flatten().notes:
    length = fractions.Fraction(element.quarterLength)
    if length == 0:
      continue
    start = fractions.Fraction(element.offset)
    if not element.pitches:
      raise SourceError(f"{label}: an unpitched note at offset {float(start)}")
    for pitch in element.pitches:
      if pitch.ps != int(pitch.ps):
        raise SourceError(f"{label}: the microtone {pitch} at offset {float(start)}")
      notes.append(_Note(int(pitch.ps), start, start + length))
  return notes


def _check_step(step: float) -> fractions.Fraction:
  if not isinstance(step, (int, float)) or not step > 0:
    raise ValueError(f"step: expected a positive number of quarter notes, got {step!r}")
  return fractions.Fraction(step)


def _roll(notes: Sequence[_Note], length: fractions.Fraction, step: float,
          shift: int, label: str) -> np.ndarray:
  """The [ceil(length / step), 88] uint8 roll of `notes` moved by `shift`
  semitones: frame t holds the notes with start <= t step < end."""
  quarters = _check_step(step)
  roll = np.zeros((math.ceil(length / quarters), NUM_PITCHES), np.uint8)
  for note in notes:
    pitch = note.midi + shift
    if pitch not in PITCHES:
      raise SourceError(f"{label}: MIDI pitch {pitch} at offset {float(note.start)} "
                        f"is off the piano keys {PITCHES.start}..{PITCHES.stop - 1}")
    roll[math.ceil(note.start / quarters):math.ceil(note.end / quarters),
         pitch - PITCHES.start] = 1
  return roll


def piano_roll(score, step: float, transpose_semitones: int = 0) -> np.ndarray:
  """[T, 88] uint8 roll of a music21 score, T = ceil(highestTime / step),
  every part; see the module docstring. SourceError (a CorpusError) names the
  score if a pitch, transposed, leaves MIDI 21..108."""
  label = _label(score)
  return _roll(_sounding_notes(score, label), fractions.Fraction(score.highestTime),
               step, transpose_semitones, label)


def key_shift(score) -> int:
  """Semitones, -6..+5, that take the score's key (music21's
  analyze('key')) to C major, or to A minor if the key is minor."""
  key = score.analyze("key")
  targets = {"major": 0, "minor": 9}
  if key.mode not in targets:
    raise SourceError(f"{_label(score)}: key {key} is neither major nor minor")
  return (targets[key.mode] - key.tonic.pitchClass + 6) % 12 - 6


class _Source(NamedTuple):
  notes: tuple[_Note, ...]
  length: fractions.Fraction   # highestTime, quarter notes
  shift: int                   # key_shift


@functools.lru_cache(maxsize=None)
def _parsed(name: str, stamp: tuple[int, int] | None) -> _Source:
  """A chorale parsed once per process (a file again once it changes, as
  `stamp`, its mtime and size, says): the four configs share the parse."""
  del stamp  # part of the cache key only
  score = parse_chorale(name)
  return _Source(tuple(_sounding_notes(score, name)),
                 fractions.Fraction(score.highestTime), key_shift(score))


def chorale(name: str, step: str, transpose: str) -> Chorale:
  """The Chorale of a corpus name or file path at a step name and transposition."""
  check_one_of("step", step, STEPS)
  check_one_of("transpose", transpose, TRANSPOSITIONS)
  stamp = None
  if os.path.isfile(name):
    stat = os.stat(name)
    stamp = (stat.st_mtime_ns, stat.st_size)
  source = _parsed(name, stamp)
  shift = source.shift if transpose == "c" else 0
  return Chorale(name, _roll(source.notes, source.length, STEPS[step], shift, name))


# ----------------------------------------------------------------------------
# The split.

def _name_hash(name: str) -> str:
  return hashlib.sha1(name.encode("utf-8")).hexdigest()


def split_of_names(names: Sequence[str]) -> dict[str, list[str]]:
  """{'train', 'valid', 'test': [name]} of distinct names: ordered by (sha1 of
  the UTF-8 name, name), cut in the JSB proportions (module docstring). The
  same for any order of `names`; ValueError on a repeated name."""
  repeated = sorted(n for n, count in collections.Counter(names).items() if count > 1)
  if repeated:
    raise ValueError(f"names: expected distinct names, got repeats {repeated[:5]}")
  ordered = sorted(names, key=lambda n: (_name_hash(n), n))
  total = sum(JSB_SIZES)
  first = round(len(ordered) * JSB_SIZES[0] / total)
  second = first + round(len(ordered) * JSB_SIZES[1] / total)
  return {"train": ordered[:first], "valid": ordered[first:second], "test": ordered[second:]}


# ----------------------------------------------------------------------------
# Records: a roll as text and back.

def encode_frames(roll: np.ndarray) -> str:
  """'43,59,62,67;;43,59': each frame's active MIDI pitches, frames joined by ';'."""
  return ";".join(",".join(str(PITCHES.start + j) for j in np.flatnonzero(frame))
                  for frame in roll)


def decode_frames(text: str, steps: int) -> np.ndarray:
  """The [steps, 88] uint8 roll of `encode_frames`' text; CorpusError if it
  has another number of frames or a pitch off the keys."""
  roll = np.zeros((steps, NUM_PITCHES), np.uint8)
  frames = text.split(";") if steps else ([] if not text else [text])
  if len(frames) != steps:
    raise store.CorpusError(f"{len(frames)} frames stored, expected {steps}")
  for t, frame in enumerate(frames):
    for value in filter(None, frame.split(",")):
      pitch = int(value)
      if pitch not in PITCHES:
        raise store.CorpusError(f"stored pitch {pitch} is off the piano keys")
      roll[t, pitch - PITCHES.start] = 1
  return roll


def fingerprint(chorales: Sequence[Chorale]) -> str:
  return store.sha256_lines(f"{c.name}\t{len(c.roll)}\t{encode_frames(c.roll)}"
                            for c in chorales)


def sources_fingerprint(names: Sequence[str]) -> str:
  """sha256 of the music21 version and the names a corpus is built from."""
  return store.sha256_lines([f"music21 {_music21().__version__}", *names])


# ----------------------------------------------------------------------------
# The TFDS builder and the reader.

class BachChorales(tfds.core.GeneratorBasedBuilder):
  """music21's Bach chorales as piano rolls, one config per step and transposition."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "music21==10.5.1 chorales, 88-key rolls, JSB-proportioned sha1 split."}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(
          name=f"{step}_{transpose}",
          description=f"{quarters} quarter notes a frame, transpose {transpose}")
      for step, quarters in STEPS.items() for transpose in TRANSPOSITIONS]

  def __init__(self, *, names: Sequence[str] | None = None, **kwargs):
    """names: the corpus names or files to build from (default: all chorales)."""
    self._names = None if names is None else tuple(names)
    super().__init__(**kwargs)

  def source_names(self) -> list[str]:
    return list(self._names) if self._names is not None else chorale_names()

  def _info(self) -> tfds.core.DatasetInfo:
    return store.indexed_info(self, {
        "name": tfds.features.Text(),
        "steps": tfds.features.Scalar(dtype=np.int32),
        "frames": tfds.features.Text()})

  def _split_generators(self, dl_manager):
    del dl_manager  # offline
    step, transpose = self.builder_config.name.split("_")
    names = self.source_names()
    splits = split_of_names(names)
    empty = [split for split, part in splits.items() if not part]
    if empty:  # TFDS cannot write an empty split
      raise store.NoSourceData(f"bach_chorales: {len(names)} names leave the splits "
                               f"{empty} empty; a corpus needs at least 4")
    self.info.metadata["split_rule"] = SPLIT_RULE
    self.info.metadata["sources"] = sources_fingerprint(names)
    generators = {}
    for split, part in splits.items():
      chorales = [chorale(name, step, transpose) for name in part]
      self.info.metadata[split] = {
          "num_chorales": len(chorales), "num_frames": sum(len(c.roll) for c in chorales),
          "sha256": fingerprint(chorales)}
      generators[split] = self._generate_examples(chorales)
    return generators

  def _generate_examples(self, chorales):
    for index, piece in enumerate(chorales):
      yield index, {"name": piece.name, "steps": len(piece.roll),
                    "frames": encode_frames(piece.roll), "index": index}


def _read_verified(builder, split: str, sources: str) -> list[Chorale]:
  records, expected = store.stored_split(builder, split, SPLIT_RULE)
  if builder.info.metadata.get("sources") != sources:
    raise store.CorpusError("built from other sources (music21 version or names)")
  chorales = [Chorale(store.text(r["name"]), decode_frames(store.text(r["frames"]),
                                                            int(r["steps"])))
              for r in records]
  if (len(chorales) != expected["num_chorales"]
      or fingerprint(chorales) != expected["sha256"]):
    raise store.CorpusError("the chorales read back differ from those written")
  return chorales


def read_split(split: str, *, step: str = "quarter", transpose: str = "none",
               data_dir: str | None = None, names: Sequence[str] | None = None
               ) -> list[Chorale]:
  """[Chorale] of a split, in split order (module docstring).

  Args:
    split: 'train', 'valid' or 'test'.
    step: a key of STEPS ('quarter' or 'eighth').
    transpose: 'none' or 'c' (to C major / A minor).
    data_dir: else $RNN_DATA_DIR, else ~/.cache/rnn_jax/tfds; built there on
      first use as bach_chorales/<step>_<transpose>.
    names: build from these corpus names or files only (tests), in a store
      of their own under data_dir/bach_chorales_subsets/<sha1 of the names>.
  """
  import corpora  # pylint: disable=g-import-not-at-top
  check_one_of("split", split, SPLITS)
  check_one_of("step", step, STEPS)
  check_one_of("transpose", transpose, TRANSPOSITIONS)
  data_dir = corpora.resolve_data_dir(data_dir)
  if names is not None:
    names = list(names)
    digest = hashlib.sha1("\n".join(names).encode("utf-8")).hexdigest()[:16]
    data_dir = os.path.join(data_dir, "bach_chorales_subsets", digest)
  config = f"{step}_{transpose}"
  sources = sources_fingerprint(names if names is not None else chorale_names())
  return store.read_built(
      lambda: BachChorales(data_dir=data_dir, config=config, names=names,
                           file_format="array_record"),
      lambda builder: _read_verified(builder, split, sources),
      name=f"{BachChorales.name}/{config}",
      path=os.path.join(data_dir, BachChorales.name, config, str(BachChorales.VERSION)))


# ----------------------------------------------------------------------------
# MIDI and pictures.

def _check_roll(roll) -> np.ndarray:
  roll = np.asarray(roll)
  if roll.ndim != 2 or roll.shape[1] != NUM_PITCHES or not np.isin(roll, (0, 1)).all():
    raise ValueError(f"roll: expected a [T, {NUM_PITCHES}] array of 0s and 1s, got "
                     f"shape {roll.shape}")
  return roll.astype(np.uint8)


def note_runs(roll: np.ndarray) -> list[tuple[int, int, int]]:
  """(MIDI pitch, first frame, end frame) of every run of active frames of a
  pitch, by start then pitch: the notes of a roll."""
  padded = np.pad(_check_roll(roll).astype(np.int8), ((1, 1), (0, 0)))
  changes = np.diff(padded, axis=0)
  runs = []
  for j in range(NUM_PITCHES):
    starts, ends = np.flatnonzero(changes[:, j] == 1), np.flatnonzero(changes[:, j] == -1)
    runs.extend((PITCHES.start + j, int(a), int(b)) for a, b in zip(starts, ends))
  return sorted(runs, key=lambda run: (run[1], run[0]))


def write_midi(roll: np.ndarray, path: str, step: float, tempo_bpm: int = 80) -> None:
  """A MIDI file (music21, one piano track) of a roll: each run of active
  frames of a pitch is one held note; every track ends at T * step quarter
  notes, so the length survives trailing empty frames."""
  music21 = _music21()
  quarters = _check_step(step)
  part = music21.stream.Part()
  part.insert(0, music21.instrument.Piano())
  part.insert(0, music21.tempo.MetronomeMark(number=tempo_bpm))
  for pitch, start, end in note_runs(roll):
    part.insert(start * quarters,
                music21.note.Note(pitch, quarterLength=(end - start) * quarters))
  midi_file = music21.midi.translate.streamToMidiFile(part)
  end_ticks = len(roll) * quarters * midi_file.ticksPerQuarterNote
  if end_ticks.denominator != 1:
    raise ValueError(f"step: {step} quarter notes is not a whole number of MIDI ticks "
                     f"({midi_file.ticksPerQuarterNote} a quarter note)")
  for track in midi_file.tracks:
    _end_track_at(track, int(end_ticks))
  midi_file.open(path, "wb")
  try:
    midi_file.write()
  finally:
    midi_file.close()


def _end_track_at(track, ticks: int) -> None:
  """Moves a track's END_OF_TRACK to `ticks` (never before its last event)."""
  music21 = _music21()
  events = track.events
  if (len(events) < 2 or not isinstance(events[-2], music21.midi.DeltaTime)
      or events[-1].type != music21.midi.MetaEvents.END_OF_TRACK):
    raise ValueError("midi: music21 wrote a track that does not end with END_OF_TRACK")
  before = sum(e.time for e in events[:-2] if isinstance(e, music21.midi.DeltaTime))
  events[-2].time = max(0, ticks - before)


def read_midi_roll(path: str, step: float) -> np.ndarray:
  """[T, 88] uint8 roll of a MIDI file, read with music21's MIDI reader.

  T = ceil(the longest track's end / step), which `write_midi` sets to the
  roll's length (trailing empty frames have no events of their own); frames
  as `piano_roll` defines them. The reader pairs note-on and note-off events
  itself: music21's score conversion merges notes into chords and loses exact
  durations when they overlap. CorpusError on a pitch off the piano keys.
  """
  music21 = _music21()
  _check_step(step)
  midi_file = music21.midi.MidiFile()
  midi_file.open(path)
  try:
    midi_file.read()
  finally:
    midi_file.close()
  notes, end = [], 0
  for track in midi_file.tracks:
    track_notes, track_end = _track_notes(track, midi_file.ticksPerQuarterNote)
    notes.extend(track_notes)
    end = max(end, track_end)
  return _roll(notes, max([end] + [n.end for n in notes]), step, 0, path)


def _track_notes(track, ticks_per_quarter: int) -> tuple[list[_Note], fractions.Fraction]:
  """The notes of a MIDI track (a note-on opens, a note-off or a zero-velocity
  note-on closes the earliest open note of its channel and pitch) and the
  track's end, in quarter notes."""
  music21 = _music21()
  on, off = music21.midi.ChannelVoiceMessages.NOTE_ON, music21.midi.ChannelVoiceMessages.NOTE_OFF
  ticks, open_notes, notes = 0, {}, []
  for event in track.events:
    if isinstance(event, music21.midi.DeltaTime):
      ticks += event.time
      continue
    if event.type not in (on, off):
      continue
    key = (event.channel, event.pitch)
    if event.type == on and event.velocity > 0:
      open_notes.setdefault(key, []).append(ticks)
    elif open_notes.get(key):
      notes.append((event.pitch, open_notes[key].pop(0), ticks))
  notes.extend((pitch, start, ticks) for (_, pitch), starts in open_notes.items()
               for start in starts)
  quarter = lambda t: fractions.Fraction(t, ticks_per_quarter)
  return ([_Note(pitch, quarter(start), quarter(end)) for pitch, start, end in notes],
          quarter(ticks))


def roll_png(roll: np.ndarray, path: str, step: float, title: str = "",
             split_at: int | None = None) -> None:
  """A PNG of a roll: time in quarter notes on x, MIDI pitch on y (the used
  range, two keys either side), and a vertical line at frame `split_at`
  (where a primed sample's continuation starts)."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  roll = _check_roll(roll)
  quarters = float(_check_step(step))
  used = np.flatnonzero(roll.any(axis=0))
  low = max(0, used.min() - 2) if used.size else 0
  high = min(NUM_PITCHES - 1, used.max() + 2) if used.size else NUM_PITCHES - 1
  figure = Figure(figsize=(min(20.0, 4 + 0.08 * len(roll)), 4 + 0.03 * (high - low)))
  axes = figure.add_subplot()
  extent = (0, len(roll) * quarters, PITCHES.start + low - 0.5, PITCHES.start + high + 0.5)
  axes.imshow(roll[:, low:high + 1].T, origin="lower", aspect="auto", cmap="Greys",
              interpolation="nearest", extent=extent, vmin=0, vmax=1)
  cs = [p for p in range(PITCHES.start + low, PITCHES.start + high + 1) if p % 12 == 0]
  axes.set_yticks(cs, [f"C{p // 12 - 1} ({p})" for p in cs])
  axes.set_xlabel("time (quarter notes)")
  axes.set_ylabel("MIDI pitch")
  if split_at is not None:
    axes.axvline(split_at * quarters, color="tab:red", linewidth=1.5)
  if title:
    axes.set_title(title)
  figure.tight_layout()
  figure.savefig(path, dpi=100)


# ----------------------------------------------------------------------------
# Statistics.

def split_stats(chorales: Sequence[Chorale]) -> dict:
  """{'chorales', 'frames', 'notes_per_frame' (mean active pitches a frame),
  'min_pitch', 'max_pitch' (MIDI), 'p50', 'p90', 'max' (frames)} of a split."""
  from corpora import text_stats  # pylint: disable=g-import-not-at-top
  frames = sum(len(c.roll) for c in chorales)
  used = np.flatnonzero(np.any([c.roll.any(axis=0) for c in chorales], axis=0))
  lengths = text_stats.length_percentiles([len(c.roll) for c in chorales])
  return {"chorales": len(chorales), "frames": frames,
          "notes_per_frame": sum(int(c.roll.sum()) for c in chorales) / frames,
          "min_pitch": PITCHES.start + int(used.min()),
          "max_pitch": PITCHES.start + int(used.max()),
          "p50": lengths["p50"], "p90": lengths["p90"], "max": lengths["max"]}


def main(argv: Sequence[str] | None = None) -> None:
  from corpora import text_stats  # pylint: disable=g-import-not-at-top
  args = text_stats.parse_stats_flags("Statistics of the Bach chorale piano rolls.", argv)
  rows = []  # all read (and built) first: TFDS prints while it builds
  for step in STEPS:
    for transpose in TRANSPOSITIONS:
      for split in SPLITS:
        row = split_stats(read_split(split, step=step, transpose=transpose,
                                     data_dir=args.data_dir))
        rows.append(f"| {step} | {transpose} | {split} | {row['chorales']} | "
                    f"{row['frames']:,} | {row['notes_per_frame']:.2f} | "
                    f"{row['min_pitch']}..{row['max_pitch']} | "
                    f"{row['p50']} / {row['p90']} / {row['max']} |")
  print("| step | transpose | split | chorales | frames | notes per frame | pitches "
        "(MIDI) | frames per chorale p50 / p90 / max |")
  print("|---|---|---|---|---|---|---|---|")
  print("\n".join(rows))


if __name__ == "__main__":
  main()
