"""Sentiment classification (N -> 1) with a recurrent encoder: IMDB, Rotten Tomatoes.

`get_config(ARG)` with ARG in imdb | rt | rt_vectors (default imdb). A bidirectional LSTM
over words, max-pooled over time, trained with Adam; dropout on the
embeddings and before the output; batches by length buckets.

  python -m experiments.sentiment --workdir=workdirs/sentiment_imdb \
      --config=experiments/configs/sentiment.py:imdb
  python -m experiments.sentiment --workdir=workdirs/sentiment_rt \
      --config=experiments/configs/sentiment.py:rt
  python -m experiments.sentiment --workdir=workdirs/sentiment_rt_vectors \
      --config=experiments/configs/sentiment.py:rt_vectors

Expected test accuracy: IMDB >= 88% (the last 400 tokens of each review,
4 epochs); RT about 76.7% from random embeddings, 78% with rt_vectors
(embeddings started from PPMI-SVD vectors of the corpora's unlabeled train
text, variational dropout 0.3 / 0.3, 1,000 steps). IMDB's test split is a
held-out tenth of the official training set (docs/results/text_tasks.md).
The best validation evaluation is kept in WORKDIR/best_checkpoint. Other
cells and shapes:
--config.cell=gru, --config.num_layers=2, --config.bidirectional=false,
--config.pooling=final.
"""

from experiments.configs import base
from models.checks import check_one_of

ARGS = ("imdb", "rt", "rt_vectors")


def get_config(arg: str | None = None):
  config = base.get_base_config()
  config.task = "sentiment"
  arg = arg or "imdb"
  check_one_of("config arg", arg, ARGS)
  config.dataset = "imdb" if arg == "imdb" else "rt"
  imdb = config.dataset == "imdb"
  vectors = arg == "rt_vectors"
  config.data_dir = ""            # '' = $RNN_DATA_DIR or ~/.cache/rnn_jax/tfds
  config.max_train_size = 0       # 0 = the whole split
  config.max_eval_size = 0

  # Words.
  config.lowercase = True
  config.min_count = 2 if imdb else 1   # of the training split
  config.max_vocab_size = 25_000 if imdb else 0  # ids incl. <pad>, <unk>; 0 = no cap
  config.max_len = 400 if imdb else 100          # tokens read per example
  config.truncation = "keep_last"                # keep_first | keep_last
  # Padded lengths of the buckets; longer examples share one more bucket.
  config.bucket_boundaries = ("64,128,192,256,320,400" if imdb else "16,24,32,48,64")

  # Model.
  config.cell = "lstm"
  config.embed_size = 128 if imdb else 200
  # '' random embeddings; 'ppmi_svd': initialised from PPMI + SVD vectors of the
  # unlabeled text of both corpora's train splits (corpora/word_vectors.py).
  config.word_vectors = "ppmi_svd" if vectors else ""
  config.word_vectors_window = 5
  config.freeze_embeddings = False   # True: the embedding is not trained
  config.hidden_size = 128        # per direction
  config.num_layers = 1
  config.bidirectional = True
  config.pooling = "max"          # final | max | mean
  config.dropout_rate = 0.5       # embeddings, between layers, before the head
  # Variational: one mask per sequence on the RNN inputs / on h -> W_hh.
  config.input_dropout_rate = 0.3 if vectors else 0.0
  config.recurrent_dropout_rate = 0.3 if vectors else 0.0

  # Optimisation.
  config.optimizer = "adam"
  config.learning_rate = 2e-3 if imdb else 1e-3
  config.lr_schedule = "cosine"
  config.grad_clip_norm = 5.0
  config.batch_size = 64 if imdb else 32
  # IMDB: 313 steps per epoch of 20,002 reviews, 4 epochs; RT: 214 per epoch
  # of 6,824 sentences, ~9 epochs.
  config.num_train_steps = 1250 if imdb else (1000 if vectors else 2000)
  config.eval_every_steps = 250 if imdb else 200
  config.log_every_steps = 50
  config.eval_batch_size = 128
  config.best_metric = "valid/accuracy:max"
  config.per_class_metrics = True  # precision/CLASS, recall/CLASS, f1/CLASS, macro_f1
  return config
