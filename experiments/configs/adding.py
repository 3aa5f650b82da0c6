"""The adding problem (Hochreiter & Schmidhuber 1997, Exp. 4; Le et al. 2015 form).

Reproduce the LSTM row at T=100 (paper: solved after 74,000 sequences):

  python -m experiments.adding --workdir=/tmp/adding_lstm_100 \
      --config.cell=lstm --config.seq_len=100

Expected: stops "solved" (valid MSE < 0.01 and < 1% of sequences with
absolute error > 0.04) in fewer than 74,000 training sequences; the test
split meets the same criterion. With --config.cell=rnn the test MSE stays
near the 0.167 baseline of predicting the mean.

`get_config("T")` sets seq_len=T, e.g. --config=experiments/configs/adding.py:500.
"""

from experiments.configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config()
  config.task = "adding"
  config.seq_len = int(arg) if arg else 100
  config.cell = "lstm"
  config.hidden_size = 128
  config.optimizer = "adam"
  config.learning_rate = 3e-3
  config.grad_clip_norm = 1.0
  config.batch_size = 20
  config.num_train_steps = 0
  config.max_train_examples = 1_000_000
  config.eval_every_steps = 100
  config.log_every_steps = 20
  return config
