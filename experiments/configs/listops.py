"""ListOps (Nangia & Bowman 2018): sequential LSTMs against tree models on gold trees.

Paper (Table 2, test accuracy): LSTM 71.5, Tree-LSTM on gold trees 98.7.
`get_config(MODEL)` with MODEL in lstm | bilstm | tree_rnn | tree_lstm |
child_sum; every variant has the same budget (steps x batch), optimiser,
schedule and hidden size. Reproduce the Tree-LSTM row:

  python -m experiments.listops --workdir=workdirs/listops_tree_lstm_15k \
      --config=experiments/configs/listops.py:tree_lstm

and the LSTM row on the same schedule, its first 5,000 steps:

  python -m experiments.listops --workdir=workdirs/listops_lstm_5k \
      --config=experiments/configs/listops.py:lstm \
      --config.num_train_steps=5000 --config.lr_decay_steps=15000

Expected: Tree-LSTM test accuracy ~98.7 after 15,000 steps (96.0 at step
5,000); LSTM 60.0 at step 5,000. docs/results/recursive.md has the measured
numbers and wall times. A shorter budget (3,000 steps, cosine over 3,000):
--config.num_train_steps=3000 --config.eval_every_steps=500.
"""

from experiments.configs import base
from models.checks import check_one_of

MODELS = ("lstm", "bilstm", "tree_rnn", "tree_lstm", "child_sum")


def get_config(arg: str | None = None):
  config = base.get_base_config()
  config.task = "listops"
  config.model = arg or "tree_lstm"
  check_one_of("config arg", config.model, MODELS)
  config.data_dir = ""            # '' = $RNN_DATA_DIR or ~/.cache/rnn_jax/tfds
  config.cell = "lstm"            # sequence models
  config.hidden_size = 128
  config.embed_size = 128
  config.mlp_layers = 1
  config.mlp_size = 0             # 0 = hidden_size
  config.tree_form = "syntax" if config.model == "child_sum" else "binary"
  config.pack_schedule = True     # tree models: pack levels into fewer slots
  config.max_train_size = 0       # 0 = all 90,000 training examples
  config.max_eval_size = 0        # 0 = all 1,000 valid and 10,000 test

  config.optimizer = "adam"
  config.learning_rate = 2e-3
  config.lr_schedule = "cosine"
  config.warmup_steps = 100
  config.grad_clip_norm = 5.0
  config.batch_size = 128
  config.num_train_steps = 15000  # ~21 epochs of 90k; cosine over all of them
  config.eval_every_steps = 1000
  config.best_metric = "valid/accuracy:max"  # kept in WORKDIR/best_checkpoint
  config.log_every_steps = 50
  config.eval_batch_size = 500
  return config
