"""Part-of-speech tagging (N -> N): word embeddings + a character BiLSTM per
word feeding a word-level BiLSTM (Plank et al. 2016), on UD Hebrew-HTB and
the Turkish treebank.

`get_config(ARG)` with ARG in ud_he | ud_tr (default ud_he).

  python -m experiments.tagging --workdir=workdirs/tagging_ud_he \
      --config=experiments/configs/tagging.py:ud_he
  python -m experiments.tagging --workdir=workdirs/tagging_ud_tr \
      --config=experiments/configs/tagging.py:ud_tr

Expected: Hebrew UPOS test token accuracy >= 95% (gold segmentation; the
SPMRL split). Metrics include accuracy on words unseen in training
(accuracy_unseen). The best validation evaluation is kept in
WORKDIR/best_checkpoint. Other cells: --config.cell=gru|rnn;
--config.num_layers=2; --config.bidirectional=false.
"""

from experiments.configs import base
from models.checks import check_one_of

DATASETS = {"ud_he": "he", "ud_tr": "tr"}


def get_config(arg: str | None = None):
  config = base.get_base_config()
  config.task = "tagging"
  arg = arg or "ud_he"
  check_one_of("config arg", arg, tuple(DATASETS))
  config.dataset = DATASETS[arg]  # he | tr (corpora.ud.read_tagging)
  config.data_dir = ""            # '' = $RNN_DATA_DIR or ~/.cache/rnn_jax/tfds
  config.max_train_size = 0       # 0 = the whole split
  config.max_eval_size = 0

  # Words and characters.
  config.lowercase = False
  config.min_count = 1            # of the training split
  config.max_vocab_size = 0       # ids incl. <pad>, <unk>; 0 = no cap
  config.max_word_len = 24        # characters read per word (its first ones)
  config.bucket_boundaries = "16,24,32,48,64"  # padded sentence lengths

  # Model.
  config.cell = "lstm"            # word and character RNNs
  config.embed_size = 100
  config.char_embed_size = 50
  config.char_hidden_size = 50    # per direction
  config.hidden_size = 128        # per direction
  config.num_layers = 1
  config.bidirectional = True
  config.dropout_rate = 0.3       # word inputs, between layers, before the head
  config.word_dropout = 0.1       # training words replaced by <unk>

  # Optimisation: 155 steps per epoch of 4,937 Hebrew sentences, ~10 epochs.
  config.optimizer = "adam"
  config.learning_rate = 2e-3
  config.lr_schedule = "cosine"
  config.grad_clip_norm = 5.0
  config.batch_size = 32
  config.num_train_steps = 1500
  config.eval_every_steps = 250
  config.log_every_steps = 50
  config.eval_batch_size = 128
  config.best_metric = "valid/accuracy:max"
  return config
