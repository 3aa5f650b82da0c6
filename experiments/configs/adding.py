"""The adding problem (Hochreiter & Schmidhuber 1997, Exp. 4; Le et al. 2015 form).

Reproduce the LSTM row at T=100 (paper, Table 7: solved after 74,000
training sequences):

  python -m experiments.adding --workdir=/tmp/adding_lstm_100 \
      --config.cell=lstm --config.seq_len=100

Expected: stops "solved" (valid MSE < 0.01 and < 1% of valid sequences with
absolute error > 0.04) after about 24,000-38,000 training sequences (seeds
0 and 1), with the test split meeting the same criterion; a few minutes on a
2-core CPU. With --config.cell=rnn the test MSE stays near the 0.167
baseline of predicting the mean.

`get_config("T")` sets seq_len=T, e.g. --config=experiments/configs/adding.py:500.
At T=500 the LSTM needs --config.forget_bias=4.0 (solved after 134,000
sequences, against the paper's 209,000); with the default bias of 1 it sits
on the 0.167 plateau for 160,000 sequences and is not solved within the
budget. At T=200 it is the other way round: bias 1 solves after 30,000,
bias 4 not within 148,000 (one seed each; docs/results/long_time_lags.md).
The budget in training sequences is the paper's number where it has one
(T=100: 74,000; T=500: 209,000; T=1000: 853,000) and 740*T otherwise. The
learning rate follows a cosine decay over the whole budget.
"""

from experiments.configs import base

PAPER_SEQUENCES = {100: 74_000, 500: 209_000, 1000: 853_000}


def get_config(arg: str | None = None):
  config = base.get_base_config()
  config.task = "adding"
  config.seq_len = int(arg) if arg else 100
  config.cell = "lstm"
  config.hidden_size = 128
  config.optimizer = "adam"
  config.learning_rate = 2e-2
  config.grad_clip_norm = 1.0
  config.batch_size = 10

  budget = PAPER_SEQUENCES.get(config.seq_len, 740 * config.seq_len)
  config.max_train_examples = budget
  config.num_train_steps = budget // config.batch_size
  config.lr_schedule = "cosine"
  config.eval_every_steps = 200
  config.log_every_steps = 20
  return config
