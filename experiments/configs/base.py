"""Keys shared by every task's config; task configs start from `get_base_config()`."""

import ml_collections


def get_base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.task = ""
  config.seed = 0            # params init, dropout and the training data stream
  config.data_seed = 0       # the fixed valid/test sets (shared across seeds)

  # Model.
  config.cell = "lstm"       # rnn | lstm | gru
  config.forget_bias = 1.0          # lstm: initial forget-gate bias
  config.gru_reset_after = True     # gru: cuDNN/PyTorch form; False = Cho et al.
  config.rnn_activation = "tanh"    # rnn: tanh | relu
  config.hidden_size = 128
  config.num_layers = 1
  config.learn_initial_state = False  # learn h0 (and c0) instead of zeros

  # Optimisation.
  config.optimizer = "adam"  # sgd | momentum | adam | rmsprop
  config.learning_rate = 1e-3
  config.momentum = 0.9
  config.lr_schedule = "constant"  # constant | cosine | step
  config.lr_decay_steps = 0         # cosine horizon; 0 = num_train_steps
  config.lr_decay_factor = 0.5
  config.lr_decay_start_step = 0
  config.lr_decay_every_steps = 1
  config.warmup_steps = 0
  config.grad_clip_norm = 1.0      # 0 disables clipping
  config.batch_size = 32
  config.ema_decay = 0.0            # > 0: evaluate a moving average of params

  # Budgets and cadence.
  config.num_train_steps = 10_000
  config.max_train_examples = 0    # 0: no budget in examples
  config.stop_when_solved = True
  config.eval_every_steps = 100
  config.log_every_steps = 20
  config.eval_batch_size = 512
  config.num_eval_examples = 2560
  config.max_checkpoints_to_keep = 2
  # Model selection: 'SPLIT/METRIC:min|max' (e.g. 'valid/perplexity:min')
  # also keeps the state of the best evaluation in WORKDIR/best_checkpoint and
  # reports it as summary['best']; '' keeps only the latest checkpoints.
  config.best_metric = ""
  config.progress_bar = True

  # Replicas in one program (replicas.py): K models with seeds seed..seed+K-1,
  # and optionally one optimiser number per replica: 'learning_rate=1e-3,3e-3'.
  config.num_replicas = 1
  config.replica_sweep = ""
  # auto: 'unrolled' on a CPU (exactly the single runs' arithmetic), 'vmap'
  # on an accelerator (one batched program).
  config.replica_program = "auto"

  # Devices (devices.py): data parallelism over num_devices (0: all visible),
  # the global batch_size split across them; the model computed in
  # compute_dtype with float32 master weights (precision.py); one optimiser
  # update every grad_accum_steps batches (optax.MultiSteps).
  config.num_devices = 0
  config.compute_dtype = "float32"  # float32 | bfloat16
  config.grad_accum_steps = 1
  return config
