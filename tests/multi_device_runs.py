"""Runs for tests/test_multi_device.py, in a process of their own.

The device count of JAX's CPU backend is fixed when the backend starts, so
the runs on 4 (or 2) virtual CPU devices happen here, in a subprocess
started with XLA_FLAGS=--xla_force_host_platform_device_count=N:

  python -m tests.multi_device_runs DIR
      in DIR: the adding task and the PTB small model trained on 1 and on 4
      devices, and 2 replicas of the adding task on 1 and 4; a 4-device
      run stopped half way and resumed on 1 and on 2 devices;
      DIR/facts.json: the layouts seen and the errors raised.

The two-process run uses the launcher itself (experiments.adding
--multihost); ADDING_FLAGS gives it the config these runs use.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import jax
import ml_collections
import numpy as np

import train
from experiments.configs import adding as adding_config
from experiments.configs import ptb as ptb_config
from tests import test_ptb

# A seconds-long adding run; a few hundred steps.
ADDING = dict(seq_len=12, hidden_size=8, batch_size=8, num_train_steps=200,
              max_train_examples=0, eval_every_steps=50, log_every_steps=10,
              num_eval_examples=16, eval_batch_size=8, stop_when_solved=False,
              progress_bar=False, lr_decay_steps=400)
ADDING_FLAGS = [f"--config.{key}={value}" for key, value in ADDING.items()]


def adding(**overrides):
  config = adding_config.get_config()
  for key, value in {**ADDING, **overrides}.items():
    config[key] = value
  return config


def ptb_small(data_dir: str, **overrides):
  """The PTB small model (2 layers of 200 LSTM units, truncated BPTT with the
  state carried across batches, SGD with clipping and step decay) on the
  tests' tiny corpus: 3 steps an epoch, 70 epochs, evaluated every 30 steps.
  The learning rate is halved (0.5) and decays from step 90: at 1.0 the
  tiny corpus is memorised in a chaotic stretch that turns the devices'
  float rounding into different curves."""
  config = ptb_config.get_config("small")
  config.dataset = "tiny_lines"
  config.data_dir = data_dir
  config.train_tokens = len(test_ptb._tokens(test_ptb.TINY_TEXTS["train"]))
  config.batch_size, config.seq_len, config.eval_batch_size = 4, 10, 4
  config.num_epochs, config.lr_decay_start_epoch = 70, 30
  config.learning_rate = 0.5
  config.progress_bar = False
  config.eval_every_steps = config.log_every_steps = 30
  for key, value in overrides.items():
    config[key] = value
  return config


def layouts(config) -> dict:
  """How a 4-device program lays out its batch and state."""
  program = train.build_program(config)
  batch = program.parallel.put_batch(next(program.train_batches))
  inputs = batch["inputs"]
  params = jax.tree_util.tree_leaves(program.state.params)
  state, _ = program.train_step(program.state, next(program.train_batches),
                                [True])
  return {
      "num_devices": program.num_devices,
      "inputs_devices": len(inputs.sharding.device_set),
      "inputs_replicated": bool(inputs.sharding.is_fully_replicated),
      "inputs_shard_rows": [s.data.shape[0] for s in inputs.addressable_shards],
      "params_replicated": all(p.sharding.is_fully_replicated and
                               len(p.sharding.device_set) == 4 for p in params),
      "stepped_params_replicated": all(
          p.sharding.is_fully_replicated and len(p.sharding.device_set) == 4
          for p in jax.tree_util.tree_leaves(state.params)),
  }


def carry_layout(config) -> list[int]:
  """Rows of the PTB carry each device holds after a step."""
  program = train.build_program(config)
  state, _ = program.train_step(program.state, next(program.train_batches),
                                [True])
  leaf = jax.tree_util.tree_leaves(state.carry)[0]
  return [s.data.shape[0] for s in leaf.addressable_shards]


def one_step_difference(config) -> float:
  """Largest |difference| of the params after one train step of the same
  batch on 1 and on 4 devices."""
  params = []
  for n in (1, 4):
    program = train.build_program(_with(config, num_devices=n))
    state, _ = program.train_step(program.state, next(program.train_batches),
                                  [True])
    params.append(jax.tree_util.tree_leaves(jax.device_get(state.params)))
  return max(float(np.max(np.abs(a - b))) for a, b in zip(*params))


def _with(config, **values):
  config = ml_collections.ConfigDict(config.to_dict())
  for key, value in values.items():
    config[key] = value
  return config


def error_of(function) -> str:
  try:
    function()
  except ValueError as e:
    return str(e)
  return ""


def main(directory: str) -> None:
  assert jax.device_count() == 4, jax.devices()
  facts = {"devices": jax.device_count()}
  for n in (1, 4):
    train.train_and_evaluate(adding(num_devices=n), f"{directory}/adding_{n}")
  data_dir = os.path.join(directory, "data")
  for n in (1, 4):
    train.train_and_evaluate(ptb_small(data_dir, num_devices=n),
                             f"{directory}/ptb_{n}")
  for n in (1, 4):  # two replicas (seeds 0 and 1), each batch split
    train.train_and_evaluate(adding(num_devices=n, num_replicas=2),
                             f"{directory}/replicas_{n}")
  half = adding(num_devices=4, num_train_steps=100)
  train.train_and_evaluate(half, f"{directory}/resume_on_1")
  shutil.copytree(f"{directory}/resume_on_1", f"{directory}/resume_on_2")
  for n in (1, 2):
    train.train_and_evaluate(adding(num_devices=n), f"{directory}/resume_on_{n}")
  facts["layouts"] = layouts(adding(num_devices=4))
  facts["carry_rows"] = carry_layout(ptb_small(data_dir, num_devices=4))
  facts["one_step"] = {"adding": one_step_difference(adding()),
                       "ptb": one_step_difference(ptb_small(data_dir))}
  facts["indivisible"] = error_of(
      lambda: train.train_and_evaluate(adding(batch_size=6),
                                       f"{directory}/indivisible"))
  facts["too_many"] = error_of(
      lambda: train.train_and_evaluate(adding(num_devices=8),
                                       f"{directory}/too_many"))
  with open(os.path.join(directory, "facts.json"), "w") as f:
    json.dump(facts, f)


if __name__ == "__main__":
  main(sys.argv[1])
