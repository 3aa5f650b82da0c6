"""Bach chorale piano rolls: the roll of a tiny fixture against music21's own
notes and a roll written by hand, transposition, the JSB-proportioned split,
the TFDS store (round trip, reuse, rebuild), MIDI round trips and the
pitch-range error."""

import glob
import os
import random

import numpy as np
import pytest
from music21 import converter, note, pitch, stream

from corpora import music, store

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "music",
                       "tiny_chorale.musicxml")
# Four real chorales beside the fixture: five names fill all three splits.
CORPUS_NAMES = ("bach/bwv269", "bach/bwv347", "bach/bwv153.1", "bach/bwv86.6")

# The fixture at step 'quarter', by hand (MIDI pitches per frame): C5 dotted
# quarter over a held C3; the eighth D5 at 1.5 falls between frames; E5 tied
# across the bar line; a soprano rest (frame 5); the chord G4+C5 over a bass
# rest; F5 E5 eighths (only F5 sampled); D5; C5 half over C3.
QUARTER_FRAMES = [{72, 48}, {72, 48}, {76, 48}, {76, 48}, {76, 43}, {43},
                  {67, 72}, {67, 72}, {77, 43}, {74, 48}, {72, 48}, {72, 48}]
# A few frames at step 'eighth': the eighths D5 (1.5) and E5 (8.5) are seen.
EIGHTH_FRAMES = {2: {72, 48}, 3: {74, 48}, 10: {43}, 16: {77, 43}, 17: {76, 43}}


def _roll_of(frames: dict[int, set[int]] | list[set[int]], length: int) -> np.ndarray:
  roll = np.zeros((length, music.NUM_PITCHES), np.uint8)
  items = frames.items() if isinstance(frames, dict) else enumerate(frames)
  for t, pitches in items:
    for p in pitches:
      roll[t, p - 21] = 1
  return roll


def _music21_roll(score, step: float) -> np.ndarray:
  """The roll by a loop over frames and music21's flattened notes."""
  length = int(np.ceil(score.highestTime / step))
  roll = np.zeros((length, 88), np.uint8)
  for t in range(length):
    for element in score.flatten().notes:
      if element.quarterLength and element.offset <= t * step < (
          element.offset + element.quarterLength):
        for p in element.pitches:
          roll[t, p.midi - 21] = 1
  return roll


def _shifted(roll: np.ndarray, semitones: int) -> np.ndarray:
  out = np.zeros_like(roll)
  if semitones >= 0:
    out[:, semitones:] = roll[:, :roll.shape[1] - semitones]
  else:
    out[:, :semitones] = roll[:, -semitones:]
  return out


@pytest.fixture(scope="module")
def score():
  return converter.parse(FIXTURE)


def test_piano_roll_matches_music21_and_the_hand_roll(score):
  assert len(score.parts) == 2 and score.highestTime == 12
  for step in music.STEPS.values():
    roll = music.piano_roll(score, step)
    assert roll.dtype == np.uint8 and roll.shape == (int(12 / step), 88)
    np.testing.assert_array_equal(roll, _music21_roll(score, step))
  np.testing.assert_array_equal(music.piano_roll(score, 1.0), _roll_of(QUARTER_FRAMES, 12))
  eighth = music.piano_roll(score, 0.5)
  for t, pitches in EIGHTH_FRAMES.items():
    assert set(21 + np.flatnonzero(eighth[t])) == pitches
  assert music.PITCHES == range(21, 109) and music.NUM_PITCHES == 88


def test_transposition_shifts_the_roll_and_c_takes_the_shortest_interval(score):
  original = music.piano_roll(score, 0.5)
  for semitones in (-5, 3, 7):
    moved = music.piano_roll(score.transpose(semitones), 0.5)
    np.testing.assert_array_equal(moved, _shifted(original, semitones))
    np.testing.assert_array_equal(music.piano_roll(score, 0.5, semitones), moved)
  assert music.key_shift(score) == 0                        # C major
  for semitones in range(-6, 6):                            # to C by -6..+5
    expected = (-semitones + 6) % 12 - 6
    assert music.key_shift(score.transpose(semitones)) == expected
  assert music.key_shift(score.transpose(4)) == -4          # E -> C: down a third
  assert music.key_shift(score.transpose(6)) == -6          # the tritone: down
  bwv269 = {t: music.chorale("bach/bwv269", "quarter", t).roll for t in music.TRANSPOSITIONS}
  np.testing.assert_array_equal(bwv269["c"], _shifted(bwv269["none"], 5))  # G major: +5


def test_split_sizes_disjoint_complete_and_stable():
  names = [f"chorale{k:03d}" for k in range(371)]
  splits = music.split_of_names(names)
  assert list(splits) == ["train", "valid", "test"]
  assert [len(splits[s]) for s in music.SPLITS] == [
      round(371 * 229 / 382), round(371 * 76 / 382), 371 - 222 - 74] == [222, 74, 75]
  assert sorted(sum(splits.values(), [])) == names          # disjoint and complete
  shuffled = names[:]
  random.Random(0).shuffle(shuffled)
  assert music.split_of_names(shuffled) == splits
  # The rule is pinned: sha1 of the name orders it.
  assert music.split_of_names(list("abcdefgh")) == {
      "train": ["h", "d", "f", "g", "e"], "valid": ["c", "a"], "test": ["b"]}
  with pytest.raises(ValueError, match="expected distinct names"):
    music.split_of_names(["a", "b", "a"])
  real = music.chorale_names()
  assert len(real) == len(set(real)) == 350 and real[0] == "bach/bwv269"
  assert [len(v) for v in music.split_of_names(real).values()] == [210, 70, 70]


def test_store_round_trip_reuse_and_rebuild(tmp_path, score):
  names = [FIXTURE, *CORPUS_NAMES]
  data_dir = str(tmp_path)
  expected = {split: [music.chorale(n, "quarter", "none") for n in part]
              for split, part in music.split_of_names(names).items()}
  for split in music.SPLITS:
    assert music.read_split(split, data_dir=data_dir, names=names) == expected[split]
  fixture, = [c for c in sum(expected.values(), []) if c.name == FIXTURE]
  np.testing.assert_array_equal(fixture.roll, music.piano_roll(score, 1.0))
  files = sorted(glob.glob(str(tmp_path / "**" / "quarter_none" / "1.0.0" / "*.array_record*"),
                           recursive=True))
  assert len(files) == 3
  before = {f: os.path.getmtime(f) for f in files}          # reused, not rebuilt
  music.read_split("test", data_dir=data_dir, names=names)
  assert {f: os.path.getmtime(f) for f in files} == before
  victim, = [f for f in files if "-train." in f]
  data = open(victim, "rb").read()
  open(victim, "wb").write(data[:len(data) // 2])           # a damaged file is rebuilt
  assert music.read_split("train", data_dir=data_dir, names=names) == expected["train"]
  assert os.path.getsize(victim) == len(data)
  eighth_c = music.read_split("valid", step="eighth", transpose="c", data_dir=data_dir,
                              names=names)
  assert eighth_c == [music.chorale(n, "eighth", "c") for n in
                      music.split_of_names(names)["valid"]]
  for kwargs, match in [({"split": "validation"}, "split: expected one of"),
                        ({"split": "train", "step": "sixteenth"}, "step: expected one of"),
                        ({"split": "train", "transpose": "d"}, "transpose: expected one of")]:
    with pytest.raises(ValueError, match=match):
      music.read_split(data_dir=data_dir, names=names, **kwargs)
  with pytest.raises(store.NoSourceData, match="at least 4"):
    music.read_split("train", data_dir=data_dir, names=[FIXTURE])


def test_frames_text_round_trip():
  roll = _roll_of({0: {21, 60}, 2: {108}}, 4)
  assert music.encode_frames(roll) == "21,60;;108;"
  np.testing.assert_array_equal(music.decode_frames("21,60;;108;", 4), roll)
  with pytest.raises(store.CorpusError, match="3 frames stored, expected 4"):
    music.decode_frames("21;;108", 4)


def test_midi_round_trip(tmp_path, score):
  path = str(tmp_path / "roll.mid")
  rolls = [(music.piano_roll(score, step), step) for step in music.STEPS.values()]
  # Held notes, chords, notes at both ends of the keys, trailing empty frames.
  hand = _roll_of({0: {60, 64}, 1: {60, 64}, 2: {60}, 4: {21, 60}, 5: {60, 108}}, 9)
  rolls += [(hand, 0.5), (hand, 1.0), (np.zeros((5, 88), np.uint8), 1.0)]
  dense = (np.random.default_rng(0).random((40, 88)) < 0.1).astype(np.uint8)
  rolls.append((dense, 0.5))
  for roll, step in rolls:
    music.write_midi(roll, path, step)
    np.testing.assert_array_equal(music.read_midi_roll(path, step), roll)
  # Frames 0-2 and 4-5 of pitch 60 are two held notes: a gap re-strikes.
  assert [run for run in music.note_runs(hand) if run[0] == 60] == [(60, 0, 3), (60, 4, 6)]
  music.write_midi(hand, path, 0.5)
  heard = converter.parse(path).flatten().notes
  assert sorted(p.midi for n in heard for p in n.pitches) == [21, 60, 60, 64, 108]


def test_pitch_off_the_keys_is_an_error(score):
  for midi in (20, 109):
    part = stream.Part([note.Note(pitch=pitch.Pitch(midi=60)),
                        note.Note(pitch=pitch.Pitch(midi=midi))])
    with pytest.raises(store.CorpusError, match=f"MIDI pitch {midi} at offset 1.0"):
      music.piano_roll(stream.Score([part]), 1.0)
  with pytest.raises(store.CorpusError, match="tiny_chorale.musicxml: MIDI pitch 109"):
    music.piano_roll(score, 1.0, transpose_semitones=32)    # F5 77 + 32


def test_roll_png(tmp_path, score):
  path = tmp_path / "roll.png"
  music.roll_png(music.piano_roll(score, 0.5), str(path), 0.5, title="tiny", split_at=8)
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
