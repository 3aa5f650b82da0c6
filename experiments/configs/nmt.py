"""English -> French translation on the offline gettext corpus
(corpora/gettext_parallel.py): the encoder-decoder of Sutskever et al. 2014
and Cho et al. 2014 against attention (Bahdanau et al. 2015).

Variants (`--config=experiments/configs/nmt.py:VARIANT`):
  encdec       no attention, source read forwards       (RNNencdec)
  encdec_rev   no attention, source reversed            (Sutskever's trick)
  attention    Bahdanau (additive) attention            (RNNsearch)
  luong        Luong 'general' attention, input feeding
All share one LSTM layer of 256 units each side, embeddings of 128, a joint
sentencepiece vocabulary of 4,000 and a budget of 4,000 steps of batch 64
(about 7.7 epochs of the ~33k training pairs; 17-26 min per model on the
2-core CPU). Rows of docs/results/seq2seq.md:

  python -m experiments.nmt --workdir=workdirs/nmt_encdec \
      --config=experiments/configs/nmt.py:encdec
  python -m experiments.nmt --workdir=workdirs/nmt_encdec_rev \
      --config=experiments/configs/nmt.py:encdec_rev
  python -m experiments.nmt --workdir=workdirs/nmt_attention \
      --config=experiments/configs/nmt.py:attention

Expected test BLEU (beam 5) on the en_fr build of docs/results/seq2seq.md
(the corpus depends on the machine's catalogs): encdec ~8.4, encdec_rev ~7.1,
attention ~29.9, luong ~31.4.

After training the launcher decodes the test split greedily and with beam 5
and writes WORKDIR/bleu_test.json (BLEU, chrF, BLEU by source length).
The larger corpus that keeps the messages with placeholders (as numbered
tokens; twice the long sentences, the second NMT table there):
--config.dataset=gettext_parallel/en_fr_keep_placeholders. Other language
pairs: --config.dataset=gettext_parallel/en_de --config.target_feature=de. A
standard TFDS dataset where it can be downloaded:
--config.dataset=wmt14_translate/fr-en --config.source_feature=en
--config.target_feature=fr --config.valid_split=validation.
"""

from experiments.configs import seq2seq_base
from models.checks import check_one_of

VARIANTS = {
    "encdec": dict(attention="none", reverse_source=False),
    "encdec_rev": dict(attention="none", reverse_source=True),
    "attention": dict(attention="bahdanau", reverse_source=False),
    "luong": dict(attention="general", input_feeding=True, reverse_source=False),
}


def get_config(arg: str | None = None):
  variant = arg or "attention"
  check_one_of("config arg", variant, sorted(VARIANTS))
  config = seq2seq_base.get_seq2seq_config()
  config.task = "nmt"
  config.variant = variant
  # Data.
  config.dataset = "gettext_parallel/en_fr"
  config.data_dir = ""              # "" -> $RNN_DATA_DIR or ~/.cache/rnn_jax/tfds
  config.source_feature = "en"      # TFDS translation datasets only
  config.target_feature = "fr"
  config.train_split = "train"
  config.valid_split = "validation"
  config.test_split = "test"
  config.vocab_size = 4_000
  config.max_tokens = 64            # longest source / target (+EOS) in tokens
  config.max_train_pairs = 0        # 0: all
  config.max_eval_pairs = 0
  # Model.
  config.embed_size = 128
  config.hidden_size = 256
  config.dropout_rate = 0.2
  for key, value in VARIANTS[variant].items():
    config[key] = value
  # Optimisation: ~520 steps per epoch at batch 64.
  config.batch_size = 64
  config.learning_rate = 2e-3
  config.lr_schedule = "cosine"
  config.num_train_steps = 4_000
  config.eval_every_steps = 500
  config.log_every_steps = 100
  config.eval_batch_size = 256
  config.stop_when_solved = False
  # Decoding.
  config.max_decode_len = 100
  config.beam_size = 5
  config.length_alpha = 1.0
  config.bleu_max_sentences = 0     # 0: the whole test split
  return config
