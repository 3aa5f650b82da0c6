"""Learning to parse (Socher et al. 2011): greedy merge parser, max-margin loss.

Recover the binary gold trees of held-out ListOps expressions from their
token sequences; report unlabeled bracketing F1:

  python -m experiments.parse --workdir=workdirs/parse_listops \
      --config=experiments/configs/parse.py:listops

and binarised dependency trees of the Turkish Web Treebank from UPOS tags
(`get_config("ud_tr")`: 3,618 / 449 / 454 projective sentences of <= 60
tokens):

  python -m experiments.parse --workdir=workdirs/parse_ud_tr \
      --config=experiments/configs/parse.py:ud_tr

Measured numbers and wall time: docs/readme_recursive.md.
"""

from experiments.configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config()
  config.task = "parse"
  config.dataset = arg or "listops"
  config.data_dir = ""
  config.hidden_size = 64
  config.embed_size = 64
  config.margin = 1.0          # kappa: added per predicted span not in gold
  config.max_train_size = 0    # 0: every training tree
  config.max_eval_size = 2000  # valid has 1,000; test: the first 2,000
  config.max_length = 60       # ud_tr: longest sentence kept (tokens)

  config.optimizer = "adam"
  config.learning_rate = 2e-3
  config.lr_schedule = "cosine"
  config.warmup_steps = 50
  config.grad_clip_norm = 5.0
  config.batch_size = 64
  config.num_train_steps = 800
  config.eval_every_steps = 200
  config.log_every_steps = 25
  config.eval_batch_size = 500
  return config
