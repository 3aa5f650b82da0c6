"""Addition of two numbers as seq2seq ("123+45" -> "168"; Learning to Execute,
Flax's seq2seq example).

Reproduce the 3-digit row:

  python -m experiments.addition --workdir=workdirs/addition3 --config.progress_bar=False

Expected: stops "solved" once the validation pairs (held out from training,
see tasks/addition.py) reach >= 99.5% exact-answer accuracy; the test pairs
>= 99%. `get_config("N")` sets num_digits=N (Zaremba & Sutskever: 9 digits
at 99%). At N=9 this recipe stalls: 0.31-0.36 token accuracy and no exact
answers from step 3,000 to 6,000 (docs/results/seq2seq.md).

Model: one LSTM layer of 256 units each side, Luong 'general' attention with
input feeding (the attention makes digit alignment easy), Adam 3e-3 with
cosine decay, batch 128.
"""

from experiments.configs import seq2seq_base


def get_config(arg: str | None = None):
  config = seq2seq_base.get_seq2seq_config()
  config.task = "addition"
  config.num_digits = int(arg) if arg else 3
  config.embed_size = 32
  config.hidden_size = 256
  config.attention = "general"
  config.input_feeding = True
  config.learning_rate = 3e-3
  config.lr_schedule = "cosine"
  config.batch_size = 128
  config.num_train_steps = 6_000 * max(1, config.num_digits // 3)
  config.eval_every_steps = 200
  config.log_every_steps = 50
  config.num_eval_examples = 5_000
  config.eval_batch_size = 1_000
  config.solved_accuracy = 0.995
  config.max_decode_len = config.num_digits + 2
  return config
