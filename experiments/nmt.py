"""Trains a translation model, then scores it with BLEU.

  python -m experiments.nmt --workdir=DIR [--config=experiments/configs/nmt.py:VARIANT]

Training is `train.train_and_evaluate` (metrics.jsonl, checkpoints, resume),
as in experiments/launch.py; then the test split is decoded greedily and
with config.beam_size, and WORKDIR/bleu_test.json gets BLEU, chrF and BLEU
by source length (--bleu=false skips it; `python -m experiments.translate
--workdir=DIR --evaluate` redoes it).
"""

import json
import sys

from absl import app, flags, logging
from ml_collections import config_flags

import train
from experiments import translate

flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics; "
                    "rerun with the same one to resume.", required=True)
flags.DEFINE_bool("bleu", True, "After training, decode the test split and "
                  "write WORKDIR/bleu_test.json.")
config_flags.DEFINE_config_file("config", "experiments/configs/nmt.py",
                                "Config file (FILE or FILE:ARG).", lock_config=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:  # orbax logs every save at INFO
    logging.set_verbosity(logging.WARNING)
  try:
    summary = train.train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir)
    print(json.dumps(summary, indent=2))
    if flags.FLAGS.bleu:
      report = translate.evaluate_and_write(flags.FLAGS.workdir)
      print(translate.format_report(report))
  except (ValueError, train.CheckpointError, train.NonFiniteLossError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
