"""ListOps, LSTM against Tree-LSTM at 5,000 steps: five seeds of each.

  python -m experiments.sweep --sweep=experiments/sweeps/listops_seeds.py \
      --workdir=workdirs/listops_seeds
  python -m experiments.report --sweep=workdirs/listops_seeds

A grid of 10 trials: the two models of docs/results/recursive.md's 5,000-step
comparison (the first 5,000 steps of the 15,000-step schedule) times seeds
0-4. The Tree-LSTM's batches pack trees node by node, so its seeds cannot be
replicas of one program; each seed is a trial. 15-21 minutes a trial on a
2-core CPU; running the command again while it runs adds a worker to the
same study, and a database --storage lets several machines share the grid.
Results: docs/results/seeds.md (Tree-LSTM 94.7 +- 1.8, LSTM 60.2 +- 0.4).
"""

from experiments import sweep

CONFIG = "listops.py:lstm"
OVERRIDES = {"num_train_steps": 5000, "lr_decay_steps": 15000,
             "best_metric": "valid/accuracy:max"}
SPACE = {
    "model": sweep.choice(["lstm", "tree_lstm"]),
    "seed": sweep.choice([0, 1, 2, 3, 4]),
}
SAMPLER = "grid"
METRIC = "valid/accuracy:max"
PRUNER = "none"
