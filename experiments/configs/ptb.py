"""Penn Treebank language models: Zaremba, Sutskever & Vinyals 2014, Table 1.

Reproduce the small (non-regularized) LSTM, 2 x 200, on CPU:

  python -m experiments.ptb --workdir=workdirs/ptb_small --config.progress_bar=False

Expected: test perplexity <= 114.5 (paper: valid 120.7, test 114.5;
TensorFlow's reference reproduction: test 115.9) after 13 epochs of 2,323
steps, for the epoch with the best validation perplexity (kept in
WORKDIR/best_checkpoint; this small model overfits after about epoch 6), with
the test text read as one stream as the paper's code does:
  python -m experiments.evaluate --workdir=workdirs/ptb_small --best \
      --set=eval_batch_size=1
(measured: 114.4 at the best epoch, 114.0 after the last; see
docs/results/language_model.md).

The medium and large rows (GPU-sized):

  python -m experiments.ptb --workdir=DIR --config=experiments/configs/ptb.py:medium
      paper: valid 86.2, test 82.7     (650 units, dropout 0.5, 39 epochs)
  python -m experiments.ptb --workdir=DIR --config=experiments/configs/ptb.py:large
      paper: valid 82.2, test 78.4     (1500 units, dropout 0.65, 55 epochs)

Character level (not a row of the paper; bits per character on Mikolov's
ptb.char version, 50 symbols), reported as 'bpc' in metrics.jsonl:

  python -m experiments.ptb --workdir=DIR --config=experiments/configs/ptb.py:char

Expected: roughly 1.4-1.5 bpc on test (a plain 2 x 512 LSTM; not verified
here).

As in the paper: SGD, no momentum; the cost per batch is the sum over the
unrolled steps of the batch-mean cross-entropy (loss_over_time='sum'; see
tasks/ptb.py), gradients clipped to a global norm; all weights ~ U(-s, s);
the learning rate is multiplied by the decay factor once per epoch after
lr_decay_start_epoch epochs; the state is carried across batches and reset
at each epoch start. Evaluation (every epoch) runs the valid and test text as
eval_batch_size contiguous rows of seq_len steps from a zero state (20 rows
here; the paper's code reads test as one row, --config.eval_batch_size=1,
which costs more time and changes the number little). Budgets are in epochs:
num_train_steps, the decay steps and the eval cadence derive from
train_tokens, batch_size and seq_len, so overriding those keeps them right.
"""

from experiments.configs import base
from models.checks import check_one_of

# Tokens of the train split with '<eos>' per line (the task checks them).
TRAIN_TOKENS = {"word": 929_589, "char": 5_017_482}

# name: hidden, seq_len, epochs, decay start epoch, decay factor, dropout,
# init scale, clip norm -- Zaremba et al. 2014, section 4.1.
_ZAREMBA = {
    "small": (200, 20, 13, 4, 0.5, 0.0, 0.1, 5.0),
    "medium": (650, 35, 39, 6, 1 / 1.2, 0.5, 0.05, 5.0),
    "large": (1500, 35, 55, 14, 1 / 1.15, 0.65, 0.04, 10.0),
}
VARIANTS = (*_ZAREMBA, "char")


def _derive_budgets(config) -> None:
  """Epoch-based budgets as references, so overrides propagate.

  Each derived key gets its own reference (`+ 0`): ml_collections writes an
  override of a key into the reference the key holds, so keys sharing one
  would all change with it (--config.log_every_steps would move the decay).
  """
  steps_per_epoch = ((config.get_ref("train_tokens") // config.get_ref("batch_size")
                      - 1) // config.get_ref("seq_len"))
  config.steps_per_epoch = steps_per_epoch
  epoch = config.get_ref("steps_per_epoch")
  config.num_train_steps = config.get_ref("num_epochs") * epoch
  config.lr_decay_start_step = config.get_ref("lr_decay_start_epoch") * epoch
  config.lr_decay_every_steps = epoch + 0
  config.eval_every_steps = epoch + 0
  config.log_every_steps = epoch + 0


def get_config(arg: str | None = None):
  variant = arg or "small"
  check_one_of("config arg", variant, VARIANTS)
  config = base.get_base_config()
  config.task = "ptb"
  config.variant = variant

  # Data.
  config.dataset = "ptb"          # offline corpus (corpora/), or a TFDS name
  config.level = "word"           # word | char
  config.data_dir = ""            # "" -> $RNN_DATA_DIR or ~/.cache/rnn_jax/tfds
  config.text_feature = "text"
  config.train_split = "train"
  config.valid_split = "validation"
  config.test_split = "test"
  config.train_tokens = TRAIN_TOKENS["word"]  # 0: do not check (and set budgets by hand)

  # Model.
  config.cell = "lstm"
  config.forget_bias = 0.0        # TF's reference; overwritten by init_scale anyway
  config.num_layers = 2
  config.embed_size = 0           # 0: = hidden_size
  config.tie_embeddings = False
  config.unroll = 1

  # Optimisation (the paper's).
  config.optimizer = "sgd"
  config.learning_rate = 1.0
  config.lr_schedule = "step"
  config.loss_over_time = "sum"   # sum | mean, see tasks/ptb.py
  config.batch_size = 20
  config.eval_batch_size = 20
  config.stop_when_solved = False
  config.max_train_examples = 0
  # Model selection on validation perplexity: the state of the best epoch is
  # kept in WORKDIR/best_checkpoint and summary['best'] reports its test too.
  config.best_metric = "valid/perplexity:min"

  if variant == "char":
    config.level = "char"
    config.train_tokens = TRAIN_TOKENS["char"]
    config.hidden_size, config.seq_len = 512, 100
    config.num_epochs, config.lr_decay_start_epoch = 10, 5
    config.lr_decay_factor, config.dropout_rate = 0.5, 0.25
    config.init_scale, config.grad_clip_norm = 0.0, 1.0   # 0: the cells' own init
    config.optimizer, config.learning_rate = "adam", 2e-3
    config.loss_over_time = "mean"
    config.batch_size = config.eval_batch_size = 32
  else:
    (config.hidden_size, config.seq_len, config.num_epochs,
     config.lr_decay_start_epoch, config.lr_decay_factor, config.dropout_rate,
     config.init_scale, config.grad_clip_norm) = _ZAREMBA[variant]
  _derive_budgets(config)
  return config
