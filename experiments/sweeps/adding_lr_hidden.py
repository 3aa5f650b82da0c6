"""The adding problem at T=100: learning rate and hidden size of the LSTM.

  python -m experiments.sweep --sweep=experiments/sweeps/adding_lr_hidden.py \
      --workdir=/tmp/sweep_demo
  python -m experiments.report --sweep=/tmp/sweep_demo

12 trials of TPE over a log-uniform learning rate and four hidden sizes, on
two worker processes. Each trial trains for a fixed budget of 120,000
sequences (not stopping once solved, so that the final valid MSE ranks the
trials; the config's own budget is the paper's 74,000), and the median
pruner stops a trial that trails the finished ones past half of it. About
5 minutes on a 2-core CPU (docs/results/sweeps.md).
"""

from experiments import sweep

CONFIG = "adding.py:100"
OVERRIDES = {
    "num_train_steps": 12_000,
    "max_train_examples": 120_000,
    "stop_when_solved": False,
    "eval_every_steps": 500,
}
SPACE = {
    "learning_rate": sweep.log_uniform(1e-3, 1e-1),
    "hidden_size": sweep.choice([16, 32, 64, 128]),
}
SAMPLER = "tpe"
METRIC = "valid/mse:min"
NUM_TRIALS = 12
NUM_WORKERS = 2
PRUNER = "median"
SEED = 0
