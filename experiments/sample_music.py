"""Writes a sampled continuation of a test chorale as MIDI and a piano-roll PNG.

  python -m experiments.sample_music --workdir=workdirs/music_gru \
      --out=sample.mid [--steps=64] [--primer_frames=8] [--piece=0] \
      [--temperature=1.0] [--seed=0] [--best]

Reads WORKDIR/config.json, restores the latest checkpoint (--step, or the
best validation one with --best), feeds the model the first --primer_frames
frames of test piece --piece (after the blank start frame it was trained
with) and samples --steps more frames, each pitch from its own Bernoulli.
OUT.mid holds primer + continuation; OUT.png (or --png) shows the roll with
a line where the continuation starts.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import jax
import numpy as np
from absl import flags

import train
from corpora import music as music_data
from experiments import cli
from experiments import line_input
from models import piano_roll
from tasks import music as music_task


class Sample(NamedTuple):
  """roll [primer + steps, 88] uint8; primer_frames: where the sample starts."""
  roll: np.ndarray
  primer_frames: int
  piece: str


def load(workdir: str, step: int | None = None, best: bool = False,
         replica: int | None = None) -> tuple[Any, Any, Any]:
  """-> (config, model, params) of a music run."""
  config, task, params, _ = train.load_trained(workdir, step, best=best, replica=replica)
  if config.task != "music":
    raise cli.UsageError(f"--workdir: {workdir} holds task {config.task!r}, not music")
  return config, task.model, params


def continue_piece(config, model: piano_roll.NextFrameModel, params, *, piece: int = 0,
                   primer_frames: int = 8, steps: int = 64, temperature: float = 1.0,
                   seed: int = 0) -> Sample:
  """Test piece `piece`'s first primer_frames frames, then `steps` sampled."""
  pieces = music_data.read_split("test", step=config.time_step, transpose=config.transpose,
                                 data_dir=config.data_dir or None)
  if not 0 <= piece < len(pieces):
    raise cli.UsageError(f"--piece: expected 0..{len(pieces) - 1} (the test split's "
                         f"pieces), got {piece}")
  roll = pieces[piece].roll
  if not 1 <= primer_frames <= len(roll):
    raise cli.UsageError(f"--primer_frames: expected 1..{len(roll)} (test piece "
                         f"{piece} has {len(roll)} frames), got {primer_frames}")
  primer = music_task.shifted(roll[:primer_frames + 1])   # blank start + the primer
  sampled = piano_roll.sample(model, params, primer, steps, jax.random.PRNGKey(seed),
                              temperature)
  out = np.concatenate([roll[:primer_frames], np.asarray(sampled, np.uint8)])
  return Sample(out, primer_frames, pieces[piece].name)


def _run(f: flags.FlagValues) -> None:
  cli.check_workdir_flag(f.workdir)
  if f.steps < 1:
    raise cli.UsageError(f"--steps: expected a positive integer, got {f.steps}")
  if not f.temperature >= 0:
    raise cli.UsageError(f"--temperature: expected a value >= 0, got {f.temperature}")
  if not f.out.lower().endswith((".mid", ".midi")):
    raise cli.UsageError(f"--out: expected a .mid or .midi path, got {f.out!r}")
  png = f.png or os.path.splitext(f.out)[0] + ".png"
  for flag, path in (("--out", f.out), ("--png", png)):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
      raise cli.UsageError(f"{flag}: the folder {folder} does not exist")
  config, model, params = load(f.workdir, f.step, f.best, f.replica)
  sample = continue_piece(config, model, params, piece=f.piece,
                          primer_frames=f.primer_frames, steps=f.steps,
                          temperature=f.temperature, seed=f.seed)
  step = music_data.STEPS[config.time_step]
  music_data.write_midi(sample.roll, f.out, step)
  music_data.roll_png(sample.roll, png, step, split_at=sample.primer_frames,
                      title=f"{sample.piece}: {sample.primer_frames} frames primed, "
                            f"{f.steps} sampled (temperature {f.temperature:g})")
  notes = sample.roll[sample.primer_frames:].sum(axis=1)
  print(f"wrote {f.out} and {png}: {sample.primer_frames} primer frames of "
        f"{sample.piece}, {f.steps} sampled frames, {notes.mean():.2f} notes per "
        f"sampled frame")


def main():
  flags.DEFINE_string("workdir", None, "A music training workdir.", required=True)
  flags.DEFINE_string("out", None, "The MIDI file to write (.mid).", required=True)
  flags.DEFINE_string("png", "", "The piano-roll PNG (default: OUT with .png).")
  flags.DEFINE_integer("steps", 64, "Frames to sample after the primer.")
  flags.DEFINE_integer("primer_frames", 8, "Frames of the test piece to prime with.")
  flags.DEFINE_integer("piece", 0, "Which test piece primes the model.")
  flags.DEFINE_float("temperature", 1.0, "Sigmoid temperature; 0 = p > 0.5.")
  flags.DEFINE_integer("seed", 0, "Sampling seed.")
  flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
  flags.DEFINE_bool("best", False, "Use the best validation checkpoint.")
  flags.DEFINE_integer("replica", None, "Which replica of a run of "
                       "num_replicas > 1 (required there).")
  line_input.run_tool(_run)


if __name__ == "__main__":
  main()
