"""The embedded Reber grammar (Hochreiter & Schmidhuber 1997, Exp. 1, Table 1).

Reproduce the LSTM row (paper: 100% of trials solved, ~8,440 sequences):

  python -m experiments.reber --workdir=/tmp/reber --config.cell=lstm

Expected: stops "solved" (every one of 256 valid strings predicted exactly)
after a few thousand training strings; the test strings too.
"""

from experiments.configs import base


def get_config(arg: str | None = None):
  del arg
  config = base.get_base_config()
  config.task = "reber"
  config.cell = "lstm"
  config.hidden_size = 16
  config.optimizer = "adam"
  config.learning_rate = 1e-2
  config.batch_size = 8
  config.max_len = 40
  config.num_train_steps = 0
  config.max_train_examples = 200_000
  config.eval_every_steps = 20
  config.log_every_steps = 10
  config.num_eval_examples = 256
  config.eval_batch_size = 256
  return config
