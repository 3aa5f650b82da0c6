"""The temporal order problem (Hochreiter & Schmidhuber 1997, Exp. 6a / 6b).

Reproduce 6a (paper: solved after 31,390 sequences, 1/2560 test wrong):

  python -m experiments.temporal_order --workdir=/tmp/order_6a --config.cell=lstm

6b (paper: 571,100 sequences):

  python -m experiments.temporal_order --workdir=/tmp/order_6b \
      --config=experiments/configs/temporal_order.py:6b

Expected: stops "solved" (<= 1/256 of valid sequences wrong) and reports the
test error rate beside it.
"""

from experiments.configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config()
  config.task = "temporal_order"
  config.variant = arg or "6a"
  config.cell = "lstm"
  config.hidden_size = 64
  config.optimizer = "adam"
  config.learning_rate = 3e-3
  config.batch_size = 20
  config.num_train_steps = 0
  config.max_train_examples = 1_000_000 if config.variant == "6a" else 2_000_000
  config.eval_every_steps = 100
  config.solved_max_error = 1 / 256
  return config
