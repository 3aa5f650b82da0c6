"""Trains a captioner, then decodes and scores every evaluation split.

  python -m experiments.captioning --workdir=DIR \
      [--config=experiments/configs/captioning.py:shapes_attention]

Training is the shared launcher's (experiments/launch.py); afterwards each
evaluation split is captioned greedily and with config.beam_size beams
(`tasks.captioning.caption_report`), WORKDIR/captions_SPLIT.json gets the
captions and scores, and metrics.jsonl one row per split and decoder
(split 'SPLIT/DECODER', e.g. 'test/beam5': bleu1..bleu4, cider_d,
exact_match). --decode=false skips it.
"""

from absl import flags

from experiments import caption
from experiments import launch

flags.DEFINE_bool("decode", True, "After training, caption every evaluation split "
                  "and score it.")


def score_splits(workdir: str) -> None:
  if flags.FLAGS.decode:
    print(caption.format_scores(caption.evaluate_and_write(workdir)))


if __name__ == "__main__":
  launch.main(launch.config_path("captioning.py"), after_training=score_splits)
