"""Polyphonic music (Chung et al. 2014): next-frame NLL on Bach chorales.

`get_config(ARG)`, ARG = CELL or CELL_large for CELL in tanh | lstm | gru
(default gru). The plain sizes are the paper's, about 20k parameters each
(tanh 100 units, LSTM 36, GRU 46, with 88 sigmoid outputs); _large ones have
about 160k (tanh 330, LSTM 150, GRU 175). The paper's optimiser: RMSProp,
gradient norm clipped at 1, the learning rate chosen on validation NLL
(`experiments/music_study.sh`). The paper's weight noise is not used.

  python -m experiments.music --workdir=workdirs/music_gru \
      --config=experiments/configs/music.py:gru

Best validation NLL is kept in WORKDIR/best_checkpoint; sample a
continuation with `python -m experiments.sample_music --workdir=...`.
"""

from experiments.configs import base
from models.checks import check_one_of

SIZES = {"tanh": 100, "lstm": 36, "gru": 46,
         "tanh_large": 330, "lstm_large": 150, "gru_large": 175}
CELLS = {"tanh": "rnn", "lstm": "lstm", "gru": "gru"}


def get_config(arg: str | None = None):
  config = base.get_base_config()
  arg = arg or "gru"
  check_one_of("config arg", arg, tuple(SIZES))
  config.task = "music"
  config.data_dir = ""             # '' = $RNN_DATA_DIR or ~/.cache/rnn_jax/tfds
  config.time_step = "quarter"     # quarter | eighth notes per frame
  config.transpose = "none"        # none | c: each piece to C major / A minor
  config.bucket_boundaries = "48,64,96,128"   # frames; longer pieces share one more

  config.cell = CELLS[arg.split("_")[0]]
  config.hidden_size = SIZES[arg]
  config.num_layers = 1
  config.dropout_rate = 0.0

  config.optimizer = "rmsprop"
  config.learning_rate = {"rnn": 1e-3, "lstm": 3e-3, "gru": 3e-3}[config.cell]
  config.grad_clip_norm = 1.0
  config.batch_size = 8            # pieces; 28 steps per epoch of 222
  config.num_train_steps = 3000
  config.eval_every_steps = 100
  config.log_every_steps = 50
  config.eval_batch_size = 32
  config.stop_when_solved = False
  config.best_metric = "valid/nll:min"
  return config
