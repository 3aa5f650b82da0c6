"""RT sentence polarity: regularisation and size of the BiLSTM, three seeds a trial.

  python -m experiments.sweep --sweep=experiments/sweeps/rt_sentiment.py \
      --workdir=workdirs/rt_sweep
  python -m experiments.report --sweep=workdirs/rt_sweep

TPE over the knobs the single-seed table of docs/results/text_tasks.md
varied by hand (dropout, variational dropout, sizes, rate, pooling, cell).
Each trial trains seeds 0-2 side by side (`num_replicas` 3) and is scored by
their mean best valid accuracy, so that the 852 validation sentences' noise
(about 1.4 points for one seed) does not pick the winner; test accuracy at
each replica's best valid evaluation is in the trial's summary.json.
"""

from experiments import sweep

CONFIG = "sentiment.py:rt"
OVERRIDES = {"num_replicas": 3, "best_metric": "valid/accuracy:max",
             "num_train_steps": 1000, "eval_every_steps": 200}
SPACE = {
    "dropout_rate": sweep.uniform(0.2, 0.6),
    "input_dropout_rate": sweep.uniform(0.0, 0.5),
    "recurrent_dropout_rate": sweep.uniform(0.0, 0.5),
    "embed_size": sweep.choice([128, 200, 300]),
    "hidden_size": sweep.choice([64, 100, 128]),
    "learning_rate": sweep.log_uniform(5e-4, 3e-3),
    "pooling": sweep.choice(["max", "mean"]),
    "cell": sweep.choice(["lstm", "gru"]),
}
SAMPLER = "tpe"
METRIC = "valid/accuracy:max"
NUM_TRIALS = 12
PRUNER = "none"
