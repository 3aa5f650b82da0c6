"""Part-of-speech tagging (N -> N): word embeddings + a character BiLSTM per
word feeding a word-level BiLSTM (Plank et al. 2016), on UD Hebrew-HTB and
the Turkish treebank.

`get_config(ARG)` with ARG in ud_he | ud_tr (default ud_he), or
TREEBANK_study_VARIANT for the bidirectional study below.

  python -m experiments.tagging --workdir=workdirs/tagging_ud_he \
      --config=experiments/configs/tagging.py:ud_he
  python -m experiments.tagging --workdir=workdirs/tagging_ud_tr \
      --config=experiments/configs/tagging.py:ud_tr

Expected: Hebrew UPOS test token accuracy >= 95% (gold segmentation; the
SPMRL split). Metrics include accuracy on words unseen in training
(accuracy_unseen). The best validation evaluation is kept in
WORKDIR/best_checkpoint. Other cells: --config.cell=gru|rnn;
--config.num_layers=2; --config.direction=forward|backward (one-way word
RNN); --config.output_delay=D (forward only: word t is tagged at step t + D).

The bidirectional study (Schuster & Paliwal 1997, section IV) on tagging:
TREEBANK_study_VARIANT, e.g. ud_he_study_delay1, with VARIANT in
forward | backward | delay1 | delay2 | bidirectional: the word-level RNN
reads forwards, backwards, forwards tagging word t after reading 1 or 2 words
past it, or both ways. The nets are smaller (embeddings 64, characters 32 +
32 per direction) and hidden sizes are matched so that the word-level
params (RNN + output layer) are equal within 1%: 64 per direction for the
bidirectional net, 106 for the one-way nets (`tasks.tagging.parameter_counts`;
tests/test_tagging_study.py). 700 steps of batch 32 (~4.5 epochs of Hebrew,
~5.8 of Turkish). Every variant x treebank x seed:

  SEEDS="0 1 2" bash experiments/bidirectional_study.sh
"""

from experiments.configs import base
from models.checks import check_one_of

DATASETS = {"ud_he": "he", "ud_tr": "tr"}
# Study variant -> (direction, output_delay).
STUDY_VARIANTS = {"forward": ("forward", 0), "backward": ("backward", 0),
                  "delay1": ("forward", 1), "delay2": ("forward", 2),
                  "bidirectional": ("bidirectional", 0)}
# Hidden units per direction giving equal word-level params (I = 64 + 2 * 32).
STUDY_HIDDEN_SIZES = {"forward": 106, "backward": 106, "bidirectional": 64}
STUDY_SEPARATOR = "_study_"


def config_args() -> list[str]:
  """Every ARG get_config takes."""
  return [*DATASETS, *(f"{d}{STUDY_SEPARATOR}{v}" for d in DATASETS
                       for v in STUDY_VARIANTS)]


def get_config(arg: str | None = None):
  config = base.get_base_config()
  config.task = "tagging"
  arg = arg or "ud_he"
  check_one_of("config arg", arg, tuple(config_args()))
  treebank, _, study = arg.partition(STUDY_SEPARATOR)
  config.variant = arg            # shown by experiments.report
  config.dataset = DATASETS[treebank]  # he | tr (corpora.ud.read_tagging)
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
  config.direction = "bidirectional"  # word RNN: forward | backward | bidirectional
  config.output_delay = 0         # forward only: word t tagged at step t + this
  config.dropout_rate = 0.3       # word inputs, between layers, before the head
  config.input_dropout_rate = 0.0      # variational: one mask per sequence on RNN inputs
  config.recurrent_dropout_rate = 0.0  # variational: one mask per sequence on h -> W_hh
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
  config.per_class_metrics = True  # precision/TAG, recall/TAG, f1/TAG, macro_f1
  if study:
    study_config(config, study)
  return config


def study_config(config, variant: str) -> None:
  """The bidirectional study's smaller net and budget, for `variant`."""
  direction, delay = STUDY_VARIANTS[variant]
  config.direction = direction
  config.output_delay = delay
  config.embed_size = 64
  config.char_embed_size = 32
  config.char_hidden_size = 32
  config.hidden_size = STUDY_HIDDEN_SIZES[direction]
  config.num_train_steps = 700
  config.eval_every_steps = 350
  config.per_class_metrics = False  # keeps experiments.report's rows short
  config.progress_bar = False
