"""Sequence reversal ("abcde" -> "edcba") as seq2seq.

  python -m experiments.reversal --workdir=workdirs/reversal --config.progress_bar=False
  python -m experiments.reversal --workdir=workdirs/reversal_rev \
      --config.reverse_source=True --config.progress_bar=False

No attention by default, so the fixed-vector bottleneck shows. Sutskever et
al. 2014's source reversal is tested on copying (`--config.copy=True`),
where reading forwards puts every output n steps after its input and
reading the source reversed (`--config.reverse_source=True`) gives the
first outputs short lags (tasks/reversal.py explains the lags; plain
reversal already has them, and reverse_source=True on it turns it into
copying's lags):

  python -m experiments.reversal --workdir=workdirs/copy --config.copy=True
  python -m experiments.reversal --workdir=workdirs/copy_rev --config.copy=True \
      --config.reverse_source=True

Variants: `get_config("attention")` adds Bahdanau attention. Stops when
validation exact-match accuracy reaches 99%.
"""

from experiments.configs import seq2seq_base


def get_config(arg: str | None = None):
  config = seq2seq_base.get_seq2seq_config()
  config.task = "reversal"
  config.max_len = 12
  config.num_symbols = 10
  config.copy = False               # True: target = source (copying)
  config.length_buckets = "auto"    # exact match by source length: 'auto' (4
                                    # ranges over 1..max_len), '' or '1-6,7-12'
  config.embed_size = 32
  config.hidden_size = 128
  if arg == "attention":
    config.attention = "bahdanau"
  elif arg:
    raise ValueError(f"config arg: expected '' or 'attention', got {arg!r}")
  config.learning_rate = 3e-3
  config.batch_size = 64
  config.num_train_steps = 5_000
  config.eval_every_steps = 250
  config.log_every_steps = 50
  config.num_eval_examples = 2_000
  config.eval_batch_size = 1_000
  config.solved_accuracy = 0.99
  config.max_decode_len = config.max_len + 1
  return config
