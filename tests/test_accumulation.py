"""grad_accum_steps: K batches of B make the update of one batch of K*B."""

import jax
import numpy as np
import pytest

import tasks
import train
from experiments.configs import adding as adding_config
from experiments.configs import rules
from tests.test_train import read_metrics, tiny


def _config(**overrides):
  # Clipping that binds and a schedule that changes per update, so that both
  # must be applied to the accumulated gradient, once per update.
  return tiny(adding_config.get_config(), seq_len=12, grad_clip_norm=0.05,
              optimizer="sgd", learning_rate=0.5, lr_schedule="step",
              lr_decay_start_step=1, lr_decay_every_steps=1,
              lr_decay_factor=0.5, **overrides)


def _params(state):
  return jax.tree_util.tree_leaves(jax.device_get(state.params))


def test_four_accumulated_batches_equal_one_four_times_larger():
  big_config, accum_config = _config(batch_size=16), _config(
      batch_size=4, grad_accum_steps=4)
  task = tasks.build(big_config)
  batches = [next(task.train_batches) for _ in range(3)]
  big_tx, accum_tx = (train.make_optimizer(big_config),
                      train.make_optimizer(accum_config))
  big_step, _ = train.make_steps(task, big_tx)
  accum_step, _ = train.make_steps(task, accum_tx)
  big = train.initial_state(big_config, task, big_tx)
  accum = train.initial_state(big_config, task, accum_tx)
  start = _params(big)
  for batch in batches:
    big, _ = big_step(big, batch)
    before = _params(accum)
    for k in range(4):
      accum, _ = accum_step(accum, jax.tree_util.tree_map(
          lambda x, k=k: x[4 * k:4 * (k + 1)], batch))
      if k < 3:  # no update until the fourth batch
        assert all(np.array_equal(a, b) for a, b in zip(_params(accum), before))
    for a, b in zip(_params(big), _params(accum)):
      np.testing.assert_allclose(a, b, atol=2e-6)
  moved = max(np.abs(a - b).max() for a, b in zip(_params(big), start))
  assert moved > 1e-3  # the updates did something to compare


def test_the_loop_logs_the_learning_rate_of_each_update(tmp_path):
  config = _config(grad_accum_steps=2, num_train_steps=20, log_every_steps=5,
                   eval_every_steps=10)
  summary = train.train_and_evaluate(config, str(tmp_path))
  assert summary["step"] == 20 and summary["examples_seen"] == 80
  rates = [r["learning_rate"] for r in read_metrics(tmp_path)
           if r["split"] == "train"]
  # Batches 10 and 20 finish updates 5 and 10: rates 0.5 * 0.5 ** (5 - 1) ...
  assert rates == pytest.approx([0.5 * 0.5 ** 4, 0.5 * 0.5 ** 9])
  config.grad_accum_steps = 4
  with pytest.raises(ValueError, match="grad_accum_steps"):
    train.train_and_evaluate(config, str(tmp_path),
                             allow_config_change=["grad_accum_steps"])


def test_accumulation_refuses_a_moving_average():
  with pytest.raises(rules.ConfigError, match="grad_accum_steps: the moving"):
    rules.validate(_config(grad_accum_steps=2, ema_decay=0.9))
