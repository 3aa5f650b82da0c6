"""Image captioning (1 -> N): Show and Tell, and Show, Attend and Tell.

`get_config(ARG)`, ARG in shapes | shapes_attention | digits |
digits_attention (default shapes_attention). A 3-block CNN (3x3 conv, ReLU,
2x2 max pool) gives an 8x8 grid of 64 features for the 64x64 shapes scenes
(2x8 for the 16x64 digit strings); an LSTM decoder starts from the grid's
mean and, for *_attention, attends over the grid at every step (Xu et al.'s
soft attention, doubly stochastic penalty config.attention_penalty).
After training the launcher decodes every evaluation split greedily and
with beam search and scores BLEU-1..4, CIDEr-D and exact match
(WORKDIR/captions_SPLIT.json, and rows in metrics.jsonl).

  python -m experiments.captioning --workdir=workdirs/captions_shapes_att \
      --config=experiments/configs/captioning.py:shapes_attention
  python -m experiments.caption --workdir=workdirs/captions_shapes_att \
      --image=scene.png --attention_png=attention.png
"""

from experiments.configs import base
from models.checks import check_one_of

ARGS = ("shapes", "shapes_attention", "digits", "digits_attention")


def get_config(arg: str | None = None):
  config = base.get_base_config()
  arg = arg or "shapes_attention"
  check_one_of("config arg", arg, ARGS)
  config.task = "captioning"
  config.dataset = arg.split("_")[0]     # shapes | digits | a TFDS name (coco_captions)
  config.data_dir = ""             # '' = $RNN_DATA_DIR or ~/.cache/rnn_jax/tfds
  config.max_train_size = 0        # images; 0 = the whole split
  config.max_eval_size = 0
  config.min_count = 1             # caption words kept in the vocabulary
  config.image_size = 0            # 0: images as stored; S: resized to S x S (coco_captions)

  config.decoder = "soft_attention" if arg.endswith("_attention") else "show_tell"
  config.conv_channels = "16,32,32"
  config.cell = "lstm"
  config.embed_size = 64
  config.hidden_size = 128
  config.num_layers = 1
  config.dropout_rate = 0.1
  config.attention_penalty = 0.01  # soft_attention: weight of sum_i (1 - sum_t alpha_ti)^2

  config.optimizer = "adam"
  config.learning_rate = 2e-3
  config.lr_schedule = "cosine"
  config.grad_clip_norm = 5.0
  config.batch_size = 32
  # shapes: 3,000 updates = 2.4 epochs of 40,000 (image, caption) pairs;
  # digits: 10,000 = 16 epochs of 20,000 numbers (short captions, cheap steps).
  config.num_train_steps = 3000 if config.dataset == "shapes" else 10_000
  config.eval_every_steps = 500 if config.dataset == "shapes" else 1000
  config.log_every_steps = 100
  config.eval_batch_size = 500
  config.stop_when_solved = False
  config.best_metric = "valid/nll:min"

  config.max_decode_len = 24
  config.beam_size = 5
  config.length_alpha = 0.0
  return config
