"""Shared body of the absl launchers: flags -> train.train_and_evaluate.

Usage: python -m experiments.<task> --workdir=DIR [--config=FILE[:ARG]] \
         [--config.<key>=<value> ...]
Configs are locked, so a mistyped key is an error, not a new key.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Callable

from absl import app, flags, logging
from ml_collections import config_flags

import train

# What a user can cause (bad flags, configs, workdirs, checkpoints, data, a
# diverging run): reported as one 'error: ...' line, not a traceback.
USER_ERRORS = (ValueError, train.CheckpointError, train.NonFiniteLossError)


@contextlib.contextmanager
def user_errors_exit():
  """Turns USER_ERRORS raised inside into 'error: MESSAGE' on stderr and exit
  status 1; anything else (a bug) keeps its traceback."""
  try:
    yield
  except USER_ERRORS as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)


def main(default_config: str,
         after_training: Callable[[str], None] | None = None) -> None:
  """Defines --workdir and --config, trains, prints the summary as JSON.

  after_training(workdir), if given, runs once training has finished (e.g.
  decoding the test split); its USER_ERRORS are reported like training's.
  """
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
    with user_errors_exit():
      summary = train.train_and_evaluate(config, flags.FLAGS.workdir)
      print(json.dumps(summary, indent=2))
      if after_training is not None:
        after_training(flags.FLAGS.workdir)

  app.run(run)
