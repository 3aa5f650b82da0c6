"""Keys shared by the sequence-to-sequence configs (addition, reversal, nmt)."""

from experiments.configs import base


def get_seq2seq_config():
  config = base.get_base_config()
  # Model (models/seq2seq.py).
  config.cell = "lstm"
  config.embed_size = 64
  config.hidden_size = 128
  config.num_layers = 1
  config.bidirectional = False
  config.attention = "none"        # none | bahdanau | dot | general
  config.input_feeding = False     # Luong attention only
  config.bridge = ""               # copy | dense | zeros; "" = copy (dense if bidirectional)
  config.reverse_source = False    # Sutskever et al.'s trick
  config.dropout_rate = 0.0
  # Decoding (evaluation and the translate command).
  config.max_decode_len = 64
  config.beam_size = 5
  config.length_alpha = 1.0        # beam score = log p / length**alpha
  # Stopping.
  config.solved_accuracy = 1.01    # valid sequence accuracy that stops training (>1: never)
  config.optimizer = "adam"
  config.learning_rate = 1e-3
  config.grad_clip_norm = 1.0
  return config
