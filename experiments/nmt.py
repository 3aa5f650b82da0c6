"""Trains a translation model, then scores it with BLEU.

  python -m experiments.nmt --workdir=DIR [--config=experiments/configs/nmt.py:VARIANT]

Training is the shared launcher's (experiments/launch.py); afterwards the
test split is decoded greedily and with config.beam_size, and
WORKDIR/bleu_test.json gets BLEU, chrF and BLEU by source length (--bleu=false
skips it; `python -m experiments.translate --workdir=DIR --evaluate` redoes it).
"""

from absl import flags

from experiments import launch
from experiments import translate

flags.DEFINE_bool("bleu", True, "After training, decode the test split and "
                  "write WORKDIR/bleu_test.json.")


def score_test_split(workdir: str) -> None:
  if flags.FLAGS.bleu:
    print(translate.format_report(translate.evaluate_and_write(workdir)))


if __name__ == "__main__":
  launch.main(launch.config_path("nmt.py"), after_training=score_test_split)
