"""Learning to parse (Socher et al. 2011): greedy merge parser.

Recover the binary gold trees of held-out ListOps expressions from their
token sequences; report unlabeled bracketing F1:

  python -m experiments.parse --workdir=workdirs/parse_listops_local \
      --config=experiments/configs/parse.py:listops

and binarised dependency trees of the Turkish Web Treebank from UPOS tags
(`get_config("ud_tr")`: 3,618 / 449 / 454 projective sentences of <= 60
tokens):

  python -m experiments.parse --workdir=workdirs/parse_ud_tr \
      --config=experiments/configs/parse.py:ud_tr

config.objective (`models.tree_parser` explains them; any other value is a
ValueError):
  'local_xent'    (default) teacher-forced along the gold tree; at each merge
                  step, -log of the softmax mass of the gold pairs among all
                  adjacent pairs.
  'local_margin'  the same scan; max(0, margin + best wrong pair's score -
                  best gold pair's score) per step.
  'global_margin' Socher et al.'s structured hinge on whole trees against the
                  loss-augmented greedy tree (stalls at ListOps F1 54.4: the
                  loss reaches 0 without greedy finding the gold tree).
config.gold_pairs: 'all' (default; every mergeable gold pair is correct, the
step merges the best-scoring one, as greedy decoding would) or 'leftmost'
(one fixed merge order).

Expected: ListOps test F1 1.0 with 100% exact trees (local_xent, 400 steps);
UD Turkish test F1 about 0.50 (local_xent, 2,400 steps; left-/right-branching
baselines 0.153 / 0.229). docs/results/recursive.md has the table.
"""

from experiments.configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config()
  config.task = "parse"
  config.dataset = arg or "listops"
  config.data_dir = ""
  config.hidden_size = 64
  config.embed_size = 64
  config.objective = "local_xent"   # | 'local_margin' | 'global_margin' (doc above)
  config.gold_pairs = "all"    # local objectives: 'all' gold pairs correct | 'leftmost'
  config.beam_size = 1          # evaluation decoding: 1 greedy, > 1 beam search
  config.beam_score = ""        # beam totals: 'log_prob' | 'sum' | '' (by objective)
  config.margin = 1.0          # kappa: per-step hinge margin (local_margin); per
                               # predicted non-gold span (global_margin)
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
  if config.dataset == "listops":   # F1 1.0 from step 100 (see the docstring)
    config.num_train_steps = 400
    config.eval_every_steps = 100
  elif config.dataset == "ud_tr":
    config.num_train_steps = 2400
    config.eval_every_steps = 400
  return config
