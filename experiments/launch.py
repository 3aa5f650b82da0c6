"""Shared body of the absl launchers: flags -> train.train_and_evaluate.

Usage: python -m experiments.<task> --workdir=DIR [--config=FILE[:ARG]] \
         [--config.<key>=<value> ...]
Configs are locked, so a mistyped key is an error, not a new key.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags, logging
from ml_collections import config_flags

import train


def main(default_config: str) -> None:
  flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics; "
                      "rerun with the same one to resume.", required=True)
  config_flags.DEFINE_config_file("config", default_config,
                                  "Config file (FILE or FILE:ARG).",
                                  lock_config=True)

  def run(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:  # orbax logs every save at INFO
      logging.set_verbosity(logging.WARNING)
    config = flags.FLAGS.config
    try:
      summary = train.train_and_evaluate(config, flags.FLAGS.workdir)
    except (ValueError, train.CheckpointError, train.NonFiniteLossError) as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(1)
    print(json.dumps(summary, indent=2))

  app.run(run)
