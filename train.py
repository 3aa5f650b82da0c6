"""One generic training loop for every task: `train_and_evaluate(config, workdir)`.

The task (tasks/) supplies model, loss, metrics and data; this module owns
the optimiser, the jitted steps, metrics files and stopping; checkpoints.py
saves and restores its checkpoints.

Workdir layout:
  checkpoints/<step>/   orbax: train state, data iterator position, metadata
  metrics.jsonl         one JSON object per evaluation: step, split, metrics
  config.json           the config of the run (a resumed run must match it)
  <task.run_files>      e.g. subwords.model: what the run was built from
                        beyond its config (a resumed run must match it too)
  summary.json          final metrics, examples seen, wall time, hardware
  tensorboard/          event files (tensorboardX)

Resuming: rerunning with the same workdir restores the latest checkpoint and
the data iterator's position, drops metrics.jsonl lines written after that
checkpoint, and continues; the per-step RNG is fold_in(seed, step), so the
resumed run is the uninterrupted run, step for step.

Faults (docs/reliability.md): a run killed at any instant resumes exactly
(files commit in the order checkpoint, best checkpoint, and metrics lines
beyond the restored step are dropped); one process at a time owns a workdir
(workdir.lock); each checkpoint records a sha256 of its arrays, checked on
restore; config.json and the workdir's files are written only once the task
builds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import time
from typing import Any, Callable, Sequence

import flax
import ml_collections
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

import checkpoints as checkpoints_lib
import devices as devices_lib
import input_pipeline
import precision
import replicas as replicas_lib
import tasks as tasks_lib
import workdir as workdir_lib
# CheckpointError is one of USER_ERRORS (experiments/cli.py looks it up here by
# name); the loop passes fault_point as train.fault_point, which tests replace.
from checkpoints import CheckpointError, fault_point
from tasks import base as task_base
from models import cells

# Keys that may change between a run and its resumption (budgets, reporting
# cadence, the number of devices); any other difference is an error, unless the run is
# resumed with allow_config_change naming the key.
RESUMABLE_KEYS = frozenset({"num_train_steps", "max_train_examples",
                            "stop_when_solved", "progress_bar", "num_devices"})

# Keys that allow_config_change refuses: they change the parameters' shapes,
# the optimizer state's structure, the data or the run's meaning, so no
# checkpoint of the run can continue under another value. Any key naming a
# vocabulary is refused too.
STRUCTURAL_KEYS = frozenset({
    "task", "model", "variant", "cell", "hidden_size", "num_layers",
    "embed_size", "bidirectional", "tie_embeddings", "attention", "bridge",
    "input_feeding", "mlp_size", "mlp_layers", "learn_initial_state",
    "gru_reset_after", "rnn_activation", "num_symbols", "objective",
    "optimizer", "ema_decay", "seed", "data_seed", "dataset", "batch_size",
    "seq_len", "max_len", "level", "copy", "tree_form", "num_replicas",
    "replica_sweep", "grad_accum_steps"})


# on_evaluation(step, {split: {metric: value}}): see train_and_evaluate.
EvaluationCallback = Callable[[int, dict[str, dict[str, float]]], None]


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or infinite loss."""


class RunInterrupted(RuntimeError):
  """The user interrupted training (Ctrl-C); says where a rerun resumes."""


WorkdirInUseError = workdir_lib.WorkdirInUseError

# What a run can stop with that the user can act on (bad input, a damaged or
# mismatched checkpoint, a diverging run, a busy workdir, Ctrl-C): launchers
# print these as one 'error: ...' line.
USER_ERRORS = (ValueError, CheckpointError, NonFiniteLossError, RunInterrupted,
               WorkdirInUseError)


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array
  carry: Any = ()  # model state carried across batches (truncated BPTT)
  ema_params: Any = ()  # Polyak average of params when config.ema_decay > 0

  def eval_params(self):
    """The params to evaluate: the moving average when one is kept."""
    return self.ema_params if self.ema_params != () else self.params


# ----------------------------------------------------------------------------
# Optimisers.

_OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop")
_SCHEDULES = ("constant", "cosine", "step")


def make_schedule(config, hyper: dict[str, Any] | None = None) -> optax.Schedule:
  """Learning rate per step: warmup, then constant, cosine or step decay.

  `hyper` overrides config numbers (replicas.SWEEPABLE) with possibly traced
  values: one replica's swept learning_rate or lr_decay_factor.

  Steps here are optimiser updates, which are batches unless
  grad_accum_steps > 1. 'cosine' decays to 0 over lr_decay_steps (default:
  the updates of num_train_steps) and stays there. 'step' multiplies the
  rate by lr_decay_factor every lr_decay_every_steps steps once
  lr_decay_start_step is reached (Zaremba et al.'s schedule).
  """
  hyper = hyper or {}
  lr = hyper.get("learning_rate", config.learning_rate)
  name = config.get("lr_schedule", "constant")
  if name not in _SCHEDULES:
    raise ValueError(f"lr_schedule: unknown schedule {name!r}; known are "
                     f"{list(_SCHEDULES)}")
  if name == "constant":
    schedule = optax.constant_schedule(lr)
  elif name == "cosine":
    horizon = config.get("lr_decay_steps", 0) or (
        config.num_train_steps // config.get("grad_accum_steps", 1))
    schedule = optax.cosine_decay_schedule(lr, max(horizon, 1))
  else:
    start, every = config.lr_decay_start_step, config.lr_decay_every_steps
    factor = hyper.get("lr_decay_factor", config.lr_decay_factor)

    def schedule(step):
      decays = jnp.maximum(0, (step - start) // every + 1)
      return lr * factor ** decays
  warmup = config.get("warmup_steps", 0)
  if warmup:
    schedule = optax.join_schedules(
        [optax.linear_schedule(0.0, lr, warmup), schedule], [warmup])
  return schedule


def batch_schedule(config) -> Callable[[int], Any]:
  """The learning rate of the update batch i (0-based) took part in: the
  schedule of the last update made by then (grad_accum_steps batches make
  one update)."""
  schedule, accumulate = make_schedule(config), config.get("grad_accum_steps", 1)
  if accumulate == 1:
    return schedule
  return lambda i: schedule(max((i + 1) // accumulate - 1, 0))


def make_optimizer(config, hyper: dict[str, Any] | None = None
                   ) -> optax.GradientTransformation:
  """config's optimiser; `hyper` overrides its numbers as make_schedule's does
  (a swept grad_clip_norm is > 0, so the layout is the same for every value).

  grad_accum_steps = K > 1 wraps it in optax.MultiSteps: gradients of K
  consecutive batches are averaged and applied as one update (clipped as
  one), the update of one batch K times larger when the loss is a mean over
  equally many examples per batch.
  """
  hyper = hyper or {}
  name = config.optimizer
  if name not in _OPTIMIZERS:
    raise ValueError(f"optimizer: unknown optimizer {name!r}; known are "
                     f"{list(_OPTIMIZERS)}")
  schedule = make_schedule(config, hyper)
  if name == "sgd":
    opt = optax.sgd(schedule)
  elif name == "momentum":
    opt = optax.sgd(schedule, momentum=hyper.get("momentum", config.momentum),
                    nesterov=False)
  elif name == "adam":
    opt = optax.adam(schedule)
  else:
    opt = optax.rmsprop(schedule)
  parts = []
  if "grad_clip_norm" in hyper or config.grad_clip_norm:
    parts.append(optax.clip_by_global_norm(
        hyper.get("grad_clip_norm", config.grad_clip_norm)))
  parts.append(opt)
  tx = optax.chain(*parts)
  if config.get("freeze_embeddings", False):
    tx = optax.multi_transform({"trained": tx, "frozen": optax.set_to_zero()},
                               embedding_labels)
  accumulate = config.get("grad_accum_steps", 1)
  return optax.MultiSteps(tx, accumulate) if accumulate > 1 else tx


def embedding_labels(params):
  """'frozen' for the params of modules named 'embed' (word embeddings),
  'trained' for the rest: the labels of freeze_embeddings."""
  def label(path, _):
    names = [getattr(k, "key", None) for k in path]
    return "frozen" if "embed" in names else "trained"
  return jax.tree_util.tree_map_with_path(label, params)


# ----------------------------------------------------------------------------
# Steps.

def _apply_in(task, compute_dtype):
  """task.apply run in compute_dtype (precision.py): params, the batch's
  floating inputs and the carry cast to it, outputs and new carry cast back
  to float32; task.apply itself for float32."""
  if compute_dtype == jnp.float32:
    return task.apply

  def apply(params, batch, rng, carry, *, train):
    outputs, carry = task.apply(
        precision.cast_floating(params, compute_dtype),
        precision.cast_floating(batch, compute_dtype), rng,
        precision.cast_floating(carry, compute_dtype), train=train)
    return (precision.cast_floating(outputs, jnp.float32),
            precision.cast_floating(carry, jnp.float32))
  return apply


def _step_bodies(task, ema_decay: float, compute_dtype=jnp.float32):
  """-> (train_body(state, batch, tx), eval_body(params, batch, carry)), unjitted.

  ema_decay > 0 keeps ema = decay * ema + (1 - decay) * params after each
  step (an exponential moving average, Polyak & Juditsky 1992), and the
  evaluations use it. The model runs in compute_dtype (precision.py); the
  loss, gradients and state stay float32.
  """
  apply = _apply_in(task, jnp.dtype(compute_dtype))

  def train_body(state: TrainState, batch, tx):
    rng = jax.random.fold_in(state.rng, state.step)

    def loss_fn(params):
      outputs, carry = apply(params, batch, rng, state.carry, train=True)
      loss, _ = task.loss(outputs, batch)
      return loss, carry

    (loss, carry), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "grad_norm": optax.global_norm(grads)}
    ema = state.ema_params
    if ema_decay > 0:
      ema = jax.tree_util.tree_map(
          lambda e, p: ema_decay * e + (1.0 - ema_decay) * p, ema, params)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                         carry=jax.lax.stop_gradient(carry),
                         ema_params=ema), metrics

  def eval_body(params, batch, carry):
    outputs, carry = apply(params, batch, None, carry, train=False)
    return task.loss(outputs, batch)[1], carry

  return train_body, eval_body


def make_steps(task, tx, ema_decay: float = 0.0, compute_dtype=jnp.float32,
               parallel: devices_lib.DataParallel | None = None):
  """-> (train_step(state, batch), eval_step(params, batch, carry)), both
  jitted; compiled once per batch shape. See _step_bodies for ema_decay and
  compute_dtype. With `parallel`, the steps take arrays laid out by
  parallel.put_state / put_batch and keep those layouts (devices.py)."""
  train_body, eval_body = _step_bodies(task, ema_decay, compute_dtype)
  train_body, eval_body = _laid_out(train_body, eval_body, parallel)
  return (jax.jit(lambda state, batch: train_body(state, batch, tx),
                  donate_argnums=0), jax.jit(eval_body))


def _laid_out(train_body, eval_body, parallel: devices_lib.DataParallel | None):
  """The step bodies with their outputs constrained to the mesh's layouts:
  the state as put_state lays it out, metrics and sums replicated, the
  carry split like the batch."""
  if parallel is None:
    return train_body, eval_body

  def laid_out_train(state, batch, *args):
    state, metrics = train_body(state, batch, *args)
    return (parallel.constrain_state(state),
            parallel.constrain_replicated(metrics))

  def laid_out_eval(params, batch, carry):
    sums, carry = eval_body(params, batch, carry)
    return parallel.constrain_replicated(sums), parallel.constrain_batch(carry)
  return laid_out_train, laid_out_eval


# The axes vmap maps over in a replicated TrainState: everything but the step.
_REPLICA_AXES = TrainState(step=None, params=0, opt_state=0, rng=0, carry=0,
                           ema_params=0)


def replica_program(config) -> str:
  """'vmap' or 'unrolled': config.replica_program, with 'auto' resolved to
  'unrolled' on a CPU (the replicas' own programs side by side: the single
  runs' arithmetic exactly, and faster there than vmap's batched matmuls)
  and 'vmap' on an accelerator (one batched program keeps it busy)."""
  mode = config.get("replica_program", "auto")
  if mode == "auto":
    return "unrolled" if jax.default_backend() == "cpu" else "vmap"
  return mode


_REPLICATED_FIELDS = ("params", "opt_state", "rng", "carry", "ema_params")


def stack_states(states: Sequence[TrainState]) -> TrainState:
  """K train states at one step -> one state of [K, ...] leaves whose step
  stays the shared scalar (the first state's); _replica undoes it."""
  return TrainState(step=states[0].step, **{
      field: replicas_lib.stack([getattr(s, field) for s in states])
      for field in _REPLICATED_FIELDS})


def _replica(state: TrainState, r: int) -> TrainState:
  """Replica r of a stacked state (its step is the shared one)."""
  return TrainState(step=state.step, **{
      field: replicas_lib.take(getattr(state, field), r)
      for field in _REPLICATED_FIELDS})


def make_replicated_steps(task, config, ema_decay: float = 0.0,
                          parallel: devices_lib.DataParallel | None = None):
  """make_steps for K replicas stacked on axis 0 (replicas.py), jitted once.

  train_step(state, batch [K, B, ...], hyper {KEY: [K]}, active [K] bool)
  -> (state, metrics [K]): replica r optimises with make_optimizer(config,
  {KEY: hyper[KEY][r]}); an inactive replica (stopped: solved or out of
  budget) keeps its state, so it stays what its single run ended with.
  eval_step(params [K, ...], batch, carry [K, ...]) shares one eval batch.
  replica_program(config) says how the K replicas are laid out: 'vmap' (one
  batched program) or 'unrolled' (K copies of the single program in one).
  `parallel` (batch_axis 1) splits each replica's batch across devices.
  """
  train_body, eval_body = _step_bodies(task, ema_decay,
                                       precision.compute_dtype(config))
  num_replicas = replicas_lib.count(config)

  def one_replica(state, batch, hyper, active):
    new, metrics = train_body(state, batch, make_optimizer(config, hyper))
    kept = jax.tree_util.tree_map(lambda n, o: jnp.where(active, n, o), new, state)
    return kept.replace(step=new.step), metrics

  if replica_program(config) == "vmap":
    train_step, eval_step = _laid_out(
        jax.vmap(one_replica, in_axes=(_REPLICA_AXES, 0, 0, 0),
                 out_axes=(_REPLICA_AXES, 0)),
        jax.vmap(eval_body, in_axes=(0, None, 0)), parallel)
    return jax.jit(train_step, donate_argnums=0), jax.jit(eval_step)

  def unrolled_train_step(state, batch, hyper, active):
    outs = [one_replica(_replica(state, r), replicas_lib.take(batch, r),
                        replicas_lib.take(hyper, r), active[r])
            for r in range(num_replicas)]
    return (stack_states([o[0] for o in outs]),
            replicas_lib.stack([o[1] for o in outs]))

  def unrolled_eval_step(params, batch, carry):
    outs = [eval_body(replicas_lib.take(params, r), batch,
                      replicas_lib.take(carry, r)) for r in range(num_replicas)]
    return (replicas_lib.stack([o[0] for o in outs]),
            replicas_lib.stack([o[1] for o in outs]))

  train_step, eval_step = _laid_out(unrolled_train_step, unrolled_eval_step,
                                    parallel)
  return jax.jit(train_step, donate_argnums=0), jax.jit(eval_step)


def _eval_totals(task, eval_step, params, carry_of=lambda carry: carry
                 ) -> dict[str, Any]:
  """Every eval split in full -> {split: the eval step's sums, on the host};
  carry_of(the task's carry for the split) is the carry eval_step starts from."""
  totals_of = {}
  for split, batches in task.eval_splits.items():
    totals, carry = None, carry_of(task.carry_for(batches[0]))
    for batch in batches:
      sums, carry = eval_step(params, batch, carry)
      totals = sums if totals is None else jax.tree_util.tree_map(
          jnp.add, totals, sums)
    totals_of[split] = jax.tree_util.tree_map(devices_lib.host_value, totals)
  return totals_of


def evaluate(task, eval_step, params) -> dict[str, dict[str, float]]:
  """Every eval split in full -> {split: {metric: value}}."""
  return {split: task.summarize(totals) for split, totals in
          _eval_totals(task, eval_step, params).items()}


# ----------------------------------------------------------------------------
# Files in the workdir.

class MetricsWriter:
  """metrics.jsonl + TensorBoard + log lines; with enabled=False (the
  processes of a multi-process run but process 0) it writes nothing."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    self._tb_dir = os.path.join(workdir, "tensorboard")

  def drop_after(self, step: int) -> None:
    """Forgets lines from beyond `step` (written before a crash), and a last
    line cut short by one; replaces the file in one step."""
    if not self.enabled or not os.path.exists(self.path):
      return
    kept = []
    with open(self.path) as f:
      for line in f:
        try:
          record = json.loads(line)
        except json.JSONDecodeError:
          continue  # a line cut short by a kill while it was written
        if record["step"] <= step:
          kept.append(line.rstrip("\n") + "\n")
    temporary = self.path + ".tmp"
    with open(temporary, "w") as f:
      f.writelines(kept)
    os.replace(temporary, self.path)

  def last_record(self) -> dict[str, Any] | None:
    if not os.path.exists(self.path):
      return None
    with open(self.path) as f:
      lines = [line for line in f if line.strip()]
    return json.loads(lines[-1]) if lines else None

  def append(self, record: dict[str, Any]) -> None:
    """One JSON line, written with one call."""
    if not self.enabled:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")
    fault_point("metrics_line")

  def write(self, step: int, split: str, metrics: dict[str, Any],
            label: dict[str, Any] | None = None) -> None:
    """One row; `label` ({'replica': r, ...}) tells a replica's rows apart
    and prefixes its TensorBoard tags with replica_r/."""
    if not self.enabled:
      return
    label = label or {}
    record = {"step": int(step), "split": split, **label, **metrics}
    self.append(record)
    if self._tb is None:
      import tensorboardX  # pylint: disable=g-import-not-at-top
      self._tb = tensorboardX.SummaryWriter(self._tb_dir)
    prefix = f"replica_{label['replica']}/" if "replica" in label else ""
    for name, value in metrics.items():
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        self._tb.add_scalar(f"{prefix}{split}/{name}", value, step)
    shown = ", ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in metrics.items())
    who = f" replica {label['replica']}" if "replica" in label else ""
    print(f"step {step}{who} {split}: {shown}", flush=True)

  def close(self):
    if self._tb is not None:
      self._tb.close()


def _hardware() -> str:
  device = jax.devices()[0]
  return (f"{device.platform}:{device.device_kind} x{jax.device_count()}, "
          f"{os.cpu_count()} host cores, {platform.machine()}")


def _config_dict(config) -> dict:
  return json.loads(config.to_json_best_effort()) if hasattr(
      config, "to_json_best_effort") else dict(config)


@dataclasses.dataclass(frozen=True)
class ConfigPlan:
  """The config of a run against the one saved in its workdir.

  saved: config.json's contents (None for a new workdir); current: the
  config in use; changes: {key: [saved value, current value]} for the keys
  that allow_config_change let differ.
  """
  saved: dict | None
  current: dict
  changes: dict[str, list]


def _check_allowed_keys(config, allow_config_change: Sequence[str]) -> None:
  """ValueError for allow_config_change keys that are unknown or structural."""
  for key in allow_config_change:
    if key not in config:
      raise ValueError(f"allow_config_change: {key!r} is not a key of the "
                       f"config; keys are {sorted(config)}")
    if key in STRUCTURAL_KEYS or "vocab" in key:
      raise ValueError(
          f"allow_config_change: {key} cannot change on resume: it changes the "
          f"model's parameters, the optimizer's state or the data, so no "
          f"checkpoint of the run fits the new value; use a new --workdir")


def _plan_config(workdir: str, config,
                 allow_config_change: Sequence[str]) -> ConfigPlan:
  """Compares the config with WORKDIR/config.json; writes nothing.

  ValueError when a key differs that is neither a budget (RESUMABLE_KEYS)
  nor named in allow_config_change.
  """
  path = os.path.join(workdir, "config.json")
  current = _config_dict(config)
  if not os.path.exists(path):
    return ConfigPlan(saved=None, current=current, changes={})
  saved = workdir_lib.read_json(path)
  resumable = set(RESUMABLE_KEYS)
  if current.get("lr_schedule") == "cosine" and not current.get("lr_decay_steps"):
    resumable.discard("num_train_steps")  # it sets the cosine horizon
  differ = sorted(k for k in set(saved) | set(current) if k not in resumable
                  and saved.get(k, replicas_lib.DEFAULTS.get(k)) != current.get(k))
  refused = [k for k in differ if k not in allow_config_change]
  if refused:
    details = "; ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}"
                        for k in refused[:5])
    hint = ""
    if any(k not in saved for k in refused):
      hint = (f". Keys missing from {path} were added to the project after "
              f"that run; write them there with the values that reproduce it "
              f"to resume")
    elif not any(k in STRUCTURAL_KEYS or "vocab" in k for k in refused):
      hint = (f", or resume with these settings changed: "
              f"--allow_config_change={','.join(refused)}")
    raise ValueError(f"workdir {workdir} holds a run with a different config "
                     f"({details}); use a new --workdir or the same config"
                     f"{hint}")
  return ConfigPlan(saved=saved, current=current,
                    changes={k: [saved.get(k), current.get(k)] for k in differ})


def _commit_config(workdir: str, plan: ConfigPlan, writer: MetricsWriter,
                   step: int) -> None:
  """Records allowed changes as a 'config_change' line at `step` (once, also
  across kills), then replaces config.json with the config in use."""
  if plan.changes:
    record = {"step": step, "split": "config_change", "changes": plan.changes}
    if writer.last_record() != record:
      writer.append(record)
      print(f"step {step} config_change: {plan.changes}", flush=True)
  if plan.saved != plan.current:
    workdir_lib.write_json(os.path.join(workdir, "config.json"), plan.current,
                           sort_keys=True)


def validate_config(config) -> None:
  """Fails fast, with the key's name, on values that would fail much later.

  Every key is checked against its rule in experiments/configs/rules.py (type,
  range, choices), then the relations between keys; raises rules.ConfigError
  (a ValueError) naming the key. Writes nothing.
  """
  from experiments.configs import rules  # pylint: disable=g-import-not-at-top
  rules.validate(config)
  if "cell" in config:  # the cell factory takes the options the rules allowed
    cells.get_cell(config.cell, **task_base.cell_options(config))


def parse_best_metric(spec: str) -> tuple[str, str, str] | None:
  """'valid/perplexity:min' -> ('valid', 'perplexity', 'min'); '' -> None."""
  if not spec:
    return None
  split_metric, _, mode = spec.partition(":")
  split, _, metric = split_metric.partition("/")
  if not split or not metric or mode not in ("min", "max"):
    raise ValueError(f"best_metric: expected 'SPLIT/METRIC:min' or "
                     f"'SPLIT/METRIC:max' (e.g. 'valid/perplexity:min'), got "
                     f"{spec!r}")
  return split, metric, mode


def _is_better(value: float, best: float | None, mode: str) -> bool:
  if best is None:
    return True
  return value < best if mode == "min" else value > best


# ----------------------------------------------------------------------------
# The loop.


def initial_state(config, task, tx) -> TrainState:
  """The train state before step 0 (also the template checkpoints restore into)."""
  init_rng, train_rng = jax.random.split(jax.random.PRNGKey(config.seed))
  first = task.first_batch()
  input_pipeline.check_batch(first, "eval batch")
  # A copy, so that no two leaves share a buffer (the train step donates them).
  params = jax.tree_util.tree_map(jnp.copy, task.init_params(init_rng, first))
  return TrainState(step=jnp.asarray(0, jnp.int32), params=params,
                    opt_state=tx.init(params), rng=train_rng,
                    carry=() if task.initial_carry is None else
                    task.initial_carry(config.batch_size),
                    ema_params=jax.tree_util.tree_map(jnp.copy, params)
                    if config.get("ema_decay", 0.0) > 0 else ())


def read_run_config(workdir: str) -> ml_collections.ConfigDict:
  """WORKDIR/config.json as written by `train_and_evaluate`; ValueError if absent."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise ValueError(f"workdir: {workdir} has no config.json (is it a training "
                     f"workdir?)")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def load_trained(workdir: str, step: int | None = None,
                 overrides: dict[str, Any] | None = None, *, best: bool = False,
                 replica: int | None = None):
  """A trained run, read-only: -> (config, task, eval params, step).

  Reads WORKDIR/config.json, applies `overrides` (existing keys only: e.g.
  {'eval_batch_size': 1}), rebuilds the task and restores checkpoint `step`
  (default: the latest). best=True reads the checkpoint kept by
  config.best_metric instead (WORKDIR/best_checkpoint). The params are the
  ones evaluations use (the EMA when the run kept one). A run of K > 1
  replicas needs `replica` (0..K-1): its config and task are then that
  replica's single run's (replicas.replica_config). Safe while the run is
  still training.
  """
  workdir = os.path.abspath(os.path.expanduser(workdir))
  config = read_run_config(workdir)
  for key, value in (overrides or {}).items():
    if key not in config:
      raise ValueError(f"override {key!r}: not a key of the run's config; keys "
                       f"are {sorted(config)}")
    config[key] = value
  num_replicas = replicas_lib.count(config)
  config = replica_config_of(workdir, config, replica)
  task = tasks_lib.build(config)
  like = initial_state(config, task, make_optimizer(config))
  params, step = restore_replica_params(workdir, like, num_replicas, step,
                                        best=best, replica=replica)
  return config, task, params, step


def replica_config_of(workdir: str, config, replica: int | None):
  """The config of the one model a tool reads from a run's config: the run's
  own (one model), or replica `replica`'s single run (replicas.replica_config);
  ValueError when `replica` is missing for a run of K > 1 replicas, or given
  for a run of one."""
  num_replicas = replicas_lib.count(config)
  if num_replicas == 1 and replica not in (None, 0):
    raise ValueError(f"replica: {workdir} holds one model, not replicas; got "
                     f"replica {replica}")
  if num_replicas > 1 and replica is None:
    raise ValueError(f"replica: {workdir} holds {num_replicas} replicas "
                     f"(seeds {config.seed}..{config.seed + num_replicas - 1}); "
                     f"choose one, e.g. --replica=0")
  return config if num_replicas == 1 else replicas_lib.replica_config(config, replica)


def restore_replica_params(workdir: str, like: TrainState, num_replicas: int,
                           step: int | None = None, *, best: bool = False,
                           replica: int | None = None):
  """checkpoints.restore_eval_params for one model's template `like`, from a
  run of `num_replicas` (its replica `replica` when K > 1) -> (params, step)."""
  if num_replicas > 1:
    like = replicas_lib.stacked_template(like, num_replicas).replace(
        step=like.step)
  params, step = checkpoints_lib.restore_eval_params(
      workdir, like, step, best=best, make_optimizer=make_optimizer)
  if num_replicas > 1:
    params = replicas_lib.take(params, replica)
  return params, step


def _check_run_files(workdir: str, task) -> None:
  for name, contents in task.run_files.items():
    path = os.path.join(workdir, name)
    if os.path.exists(path):
      with open(path, "rb") as f:
        if f.read() != contents:
          raise ValueError(
              f"workdir {workdir}: its {name} differs from the one the task "
              f"builds now (the corpus it is trained from changed since the run "
              f"started); use a new --workdir")
    else:
      with open(path + ".tmp", "wb") as f:
        f.write(contents)
      os.replace(path + ".tmp", path)


def train_and_evaluate(config, workdir: str, *,
                       allow_config_change: Sequence[str] = (),
                       on_evaluation: EvaluationCallback | None = None
                       ) -> dict[str, Any]:
  """Trains config.task until a budget or the solved criterion; returns summary.

  Returns {'step', 'examples_seen', 'solved', 'metrics': {split: {...}},
  'wall_time_s', 'hardware'} (and 'best' with config.best_metric), also
  written to WORKDIR/summary.json. With config.num_replicas = K > 1 (K
  models in one program, replicas.py), 'metrics' is the mean over replicas,
  'metrics_sd' their sample standard deviation, 'replicas' each replica's
  own entries, 'examples_seen' the mean, and 'solved' whether all solved;
  metrics.jsonl rows carry 'replica' (and the swept key's value).

  Args:
    config: the run's config.
    workdir: checkpoints, metrics and the run's files; rerun with the same
      one to resume. Nothing is written to it before the config is valid,
      the task builds and the initial state exists; one process at a time
      may use it (workdir.lock).
    allow_config_change: keys whose values may differ from the workdir's
      config.json on resume (e.g. ('learning_rate', 'grad_clip_norm') after a
      non-finite loss). Each change is recorded as a 'config_change' line in
      metrics.jsonl at the resumed step and config.json is updated. Keys that
      change the model, the optimizer's state or the data (STRUCTURAL_KEYS)
      are refused.
    on_evaluation: called as on_evaluation(step, results) after each
      evaluation's checkpoint has committed, results being {split: {metric:
      value}} (the mean over replicas in a replicated run). An exception it
      raises (e.g. optuna.TrialPruned) ends the run and propagates; the run
      resumes from that checkpoint if started again.

  Raises ValueError (bad config, a different config in the workdir),
  CheckpointError, NonFiniteLossError, RunInterrupted (Ctrl-C) and
  workdir.WorkdirInUseError, all of them USER_ERRORS.
  """
  validate_config(config)
  _check_allowed_keys(config, allow_config_change)
  parse_best_metric(config.get("best_metric", ""))
  workdir = os.path.abspath(os.path.expanduser(workdir))  # orbax needs absolute
  program = build_program(config)
  # Process 0 holds the lock for all the processes of a multi-process run.
  with (workdir_lib.lock(workdir) if devices_lib.is_main_process()
        else contextlib.nullcontext()):
    return _train_in_workdir(config, workdir, program, allow_config_change,
                             on_evaluation)


@dataclasses.dataclass
class Program:
  """What the loop trains: one model, or K replicas stacked on axis 0.

  task: the (first replica's) task: eval splits, metrics, run files.
  train_batches: the training iterator (get_state/set_state).
  state: the initial train state, the template checkpoints restore into.
  train_step: (state, batch, active [K] bool) -> (state, metrics, [K] or scalar).
  evaluate: eval params -> K results {split: {metric: value}}.
  examples_in: the batch just drawn -> K example counts.
  check_batch: (batch, where) -> None, raising ValueError on a malformed one.
  schedules: K learning-rate schedules (for the train rows).
  labels: K dicts telling the replicas apart ([{}] for one model).
  parallel: the device mesh and layouts (devices.py); None on one device.
  """
  task: Any
  train_batches: Any
  state: TrainState
  train_step: Callable
  evaluate: Callable
  examples_in: Callable
  check_batch: Callable
  schedules: list
  labels: list[dict[str, Any]]
  parallel: devices_lib.DataParallel | None = None

  @property
  def num_replicas(self) -> int:
    return len(self.labels)

  @property
  def num_devices(self) -> int:
    return 1 if self.parallel is None else self.parallel.num_devices

  def place_state(self, state: TrainState) -> TrainState:
    """`state` laid out on the program's devices (a restored one, too)."""
    return state if self.parallel is None else self.parallel.put_state(state)


def data_parallel(config, batch_axis: int = 0
                  ) -> devices_lib.DataParallel | None:
  """The run's device mesh (devices.py): config.num_devices of the visible
  devices, 0 meaning all; None for one device in one process (no layouts).
  ValueError when batch_size does not divide by the device count."""
  num_devices = devices_lib.resolve_num_devices(config)
  if num_devices == 1 and jax.process_count() == 1:
    return None
  return devices_lib.DataParallel.on_devices(num_devices, batch_axis)


def _placing(parallel: devices_lib.DataParallel | None, eval_step):
  """-> (put_batch, eval_step taking host batches and carries): the batch
  laid out on the mesh before each step; identities without a mesh."""
  if parallel is None:
    return (lambda batch: batch), eval_step
  # Replicas share each eval batch: it is split on axis 0, their carries on 1.
  put_eval = dataclasses.replace(parallel, batch_axis=0).put_batch
  return parallel.put_batch, lambda params, batch, carry: parallel.settle(
      eval_step(params, put_eval(batch), parallel.put_batch(carry)))


def _settled(parallel: devices_lib.DataParallel | None, outputs):
  return outputs if parallel is None else parallel.settle(outputs)


def build_program(config) -> Program:
  """The task(s), initial state and jitted steps of config (K = num_replicas),
  laid out on the run's devices (data_parallel)."""
  ema_decay = config.get("ema_decay", 0.0)
  compute_dtype = precision.compute_dtype(config)
  if replicas_lib.count(config) == 1:
    parallel = data_parallel(config)
    task = tasks_lib.build(config)
    tx = make_optimizer(config)
    train_step, eval_step = make_steps(task, tx, ema_decay, compute_dtype,
                                       parallel)
    put, eval_step = _placing(parallel, eval_step)
    state = initial_state(config, task, tx)
    return Program(
        task=task, train_batches=task.train_batches,
        state=state if parallel is None else parallel.put_state(state),
        train_step=lambda state, batch, active: _settled(
            parallel, train_step(state, put(batch))),
        evaluate=lambda params: [evaluate(task, eval_step, params)],
        examples_in=lambda batch: [task.examples_in(batch)],
        check_batch=input_pipeline.check_batch,
        schedules=[batch_schedule(config)], labels=[{}], parallel=parallel)
  parallel = data_parallel(config, batch_axis=1)
  singles = [replicas_lib.replica_config(config, r)
             for r in range(replicas_lib.count(config))]
  tasks = [tasks_lib.build(single) for single in singles]
  states = [initial_state(single, task, make_optimizer(single))
            for single, task in zip(singles, tasks)]
  batches = replicas_lib.ReplicaBatches([task.train_batches for task in tasks])
  batches.check_stackable()
  hyper = replicas_lib.hyperparameters(config)
  train_step, eval_step = make_replicated_steps(tasks[0], config, ema_decay,
                                                parallel)
  put, eval_step = _placing(parallel, eval_step)
  labels = replicas_lib.labels(config)
  state = stack_states(states)

  def check_batch(batch, where):
    del batch  # the stacked one; each replica's own is checked
    for label, single in zip(labels, batches.last_batches):
      input_pipeline.check_batch(single, f"{where}, replica {label['replica']}")

  return Program(
      task=tasks[0], train_batches=batches,
      state=state if parallel is None else parallel.put_state(state),
      train_step=lambda state, batch, active: _settled(parallel, train_step(
          state, put(batch), hyper, jnp.asarray(active))),
      evaluate=lambda params: evaluate_replicas(
          tasks[0], eval_step, params, len(tasks)),
      examples_in=lambda batch: [task.examples_in(single) for task, single in
                                 zip(tasks, batches.last_batches)],
      check_batch=check_batch,
      schedules=[batch_schedule(single) for single in singles], labels=labels,
      parallel=parallel)


def evaluate_replicas(task, eval_step, params, num_replicas: int
                      ) -> list[dict[str, dict[str, float]]]:
  """evaluate() for stacked params [K, ...] -> K results, one eval pass."""
  sums = _eval_totals(task, eval_step, params,
                      lambda carry: replicas_lib.stack([carry] * num_replicas))
  return [{split: task.summarize(replicas_lib.take(total, r))
           for split, total in sums.items()} for r in range(num_replicas)]


@dataclasses.dataclass
class ReplicaProgress:
  """One replica's standing in the loop (the run's, with one model)."""
  examples: int = 0
  solved: bool = False
  solved_step: int | None = None
  best: dict[str, Any] | None = None  # {'step', 'value', 'metrics'}
  results: dict[str, dict[str, float]] | None = None  # its latest report
  window: list = dataclasses.field(default_factory=list)  # train metrics


def _restored_progress(meta: dict, num_replicas: int) -> list[ReplicaProgress]:
  """Each replica's standing from a checkpoint's meta (see _meta_record)."""
  if num_replicas == 1:
    return [ReplicaProgress(examples=int(meta["examples_seen"]),
                            solved=bool(meta["solved"]), best=meta.get("best"))]
  entries = meta.get("replicas") or [{} for _ in range(num_replicas)]
  return [ReplicaProgress(examples=int(e.get("examples_seen", 0)),
                          solved=bool(e.get("solved", False)),
                          solved_step=e.get("solved_step"), best=e.get("best"))
          for e in entries]


def _meta_record(progress: list[ReplicaProgress], labels: list[dict],
                 wall_time_s: float, config: dict, best_spec) -> dict[str, Any]:
  """What a checkpoint records beside the state (the keys one model's run
  has always written; 'replicas' with K > 1)."""
  record = {"examples_seen": _mean_examples(progress),
            "solved": all(p.solved for p in progress),
            "wall_time_s": wall_time_s, "config": config}
  if len(progress) == 1:
    if best_spec:
      record["best"] = progress[0].best
    return record
  record["replicas"] = _replica_entries(progress, labels, best_spec)
  return record


def _replica_entries(progress: list[ReplicaProgress], labels: list[dict],
                     best_spec) -> list[dict[str, Any]]:
  """Each replica's label and standing, as checkpoints and summary.json
  record them."""
  return [{**label, "examples_seen": p.examples, "solved": p.solved,
           "solved_step": p.solved_step, **({"best": p.best} if best_spec else {})}
          for label, p in zip(labels, progress)]


def _mean_examples(progress: list[ReplicaProgress]) -> int:
  return int(round(sum(p.examples for p in progress) / len(progress)))


def _summary(step: int, progress: list[ReplicaProgress], labels: list[dict],
             wall_time_s: float, best_spec) -> dict[str, Any]:
  """summary.json: one model's run as always; K replicas' mean, sd and own."""
  results = [p.results for p in progress]
  summary = {"step": step, "examples_seen": _mean_examples(progress),
             "solved": all(p.solved for p in progress)}
  if len(progress) == 1:
    summary.update(metrics=results[0], wall_time_s=round(wall_time_s, 1),
                   hardware=_hardware())
    if best_spec:
      summary["best"] = progress[0].best
    return summary
  mean, sd = replicas_lib.mean_and_sd(results)
  summary.update(
      metrics=mean, metrics_sd=sd, num_replicas=len(progress),
      replicas=[{**entry, "metrics": p.results} for entry, p in zip(
          _replica_entries(progress, labels, best_spec), progress)],
      wall_time_s=round(wall_time_s, 1), hardware=_hardware())
  if best_spec:
    values = np.asarray([p.best["value"] for p in progress if p.best])
    summary["best"] = {"value": float(np.mean(values)),
                       "sd": float(np.std(values, ddof=1)),
                       "per_replica": [p.best for p in progress]}
  return summary


def _merge_best(best_state, state, improved: list[bool]):
  """best_state with the replicas that `improved` taken from `state`."""
  mask = np.asarray(improved)

  def pick(old, new):
    where = mask.reshape((-1,) + (1,) * (np.ndim(new) - 1))
    return jnp.where(where, new, old)

  merged = jax.tree_util.tree_map(pick, best_state.replace(step=state.step),
                                  state)
  return merged.replace(step=jnp.copy(state.step))  # the steps donate `state`


def _train_in_workdir(config, workdir: str, program: Program,
                      allow_config_change: Sequence[str],
                      on_evaluation: EvaluationCallback | None
                      ) -> dict[str, Any]:
  """train_and_evaluate's loop, run while holding the workdir's lock."""
  task, state, labels = program.task, program.state, program.labels
  replicated = program.num_replicas > 1
  plan = _plan_config(workdir, config, allow_config_change)
  main = devices_lib.is_main_process()  # the one that writes the run's files
  if main:
    _check_run_files(workdir, task)
  best_spec = parse_best_metric(config.get("best_metric", ""))
  cleanup = contextlib.ExitStack()
  with cleanup:
    checkpoints = checkpoints_lib.Checkpoints(
        os.path.join(workdir, "checkpoints"), config.max_checkpoints_to_keep,
        make_optimizer=make_optimizer)
    cleanup.callback(checkpoints.close)
    best_checkpoints = None
    if best_spec:
      best_checkpoints = checkpoints_lib.Checkpoints(
          os.path.join(workdir, checkpoints_lib.BEST_DIR), 1,
          make_optimizer=make_optimizer)
      cleanup.callback(best_checkpoints.close)
    writer = MetricsWriter(workdir, enabled=main)
    cleanup.callback(writer.close)
    meta = {"examples_seen": 0, "wall_time_s": 0.0, "solved": False}
    latest = checkpoints.latest_step()
    if latest is not None:
      state, data_state, meta = checkpoints.restore(latest, state)
      state = program.place_state(state)  # saved on any number of devices
      program.train_batches.set_state(data_state)
      print(f"Resumed from checkpoint {latest} in {checkpoints.directory}",
            flush=True)
    writer.drop_after(latest or 0)
    progress = _restored_progress(meta, program.num_replicas)
    best_state = None
    if best_checkpoints is not None and not replicated:
      checkpoints_lib.reconcile_best_checkpoint(
          best_checkpoints, latest, state, program.train_batches.get_state(), meta)
    elif best_checkpoints is not None:
      best_state = checkpoints_lib.reconcile_replicas_best_checkpoint(
          best_checkpoints, latest, state, program.train_batches.get_state(),
          meta, [p.best for p in progress], _merge_best)
    if main:
      _commit_config(workdir, plan, writer, latest or 0)

    step = int(state.step)
    budget_examples = config.get("max_train_examples") or math.inf
    budget_steps = config.num_train_steps if config.num_train_steps > 0 else math.inf
    wall_start = time.time() - float(meta["wall_time_s"])
    stop_when_solved = config.get("stop_when_solved", True)
    pending = []  # (per-step metrics not yet read back, active mask)
    last_good = latest
    evaluated = False

    def training(p: ReplicaProgress) -> bool:
      return p.examples < budget_examples and not (p.solved and stop_when_solved)

    def name(r: int) -> str:
      return f" (replica {r}: {labels[r]})" if replicated else ""

    def flush_logs():
      nonlocal pending
      if not pending:
        return
      stacked = jax.tree_util.tree_map(
          lambda *x: np.stack([devices_lib.host_value(v) for v in x]),
          *[m for m, _ in pending])
      active = np.asarray([a for _, a in pending])                   # [n, K]
      stacked = {k: np.reshape(v, active.shape) for k, v in stacked.items()}
      losses = stacked["loss"]
      bad = active & ~np.isfinite(losses)
      if np.any(bad):
        row, r = np.argwhere(bad)[0]
        first_bad = step - len(losses) + int(row) + 1
        kept = (f"the last good checkpoint (step {last_good}) in "
                f"{checkpoints.directory} is kept" if last_good is not None
                else "no checkpoint had been written")
        raise NonFiniteLossError(
            f"non-finite loss ({losses[row, r]}) at step {first_bad}{name(r)}; "
            f"{kept}. Lower learning_rate or set grad_clip_norm: "
            f"rerun with the new values and "
            f"--allow_config_change=learning_rate,grad_clip_norm to resume "
            f"from that checkpoint.")
      for r, p in enumerate(progress):
        if np.any(active[:, r]):
          p.window.append({k: v[:, r][active[:, r]] for k, v in stacked.items()})
      bar.set_postfix(loss=f"{float(losses[-1, 0]):.4g}", refresh=False)
      pending = []

    def report_train_metrics(r: int, p: ReplicaProgress) -> None:
      if not p.window:
        return
      train_metrics = {k: float(np.mean(np.concatenate([w[k] for w in p.window])))
                       for k in p.window[0]}
      train_metrics["learning_rate"] = float(program.schedules[r](step - 1))
      writer.write(step, "train", {**train_metrics, "examples_seen": p.examples},
                   labels[r])
      p.window = []

    def evaluate_and_checkpoint(reporting: list[bool]):
      nonlocal last_good, best_state, evaluated
      flush_logs()
      for r, p in enumerate(progress):
        if reporting[r]:
          report_train_metrics(r, p)
      results = program.evaluate(state.eval_params())
      evaluated = True
      improved = [False] * len(progress)
      for r, p in enumerate(progress):
        if not reporting[r] and p.results is not None:
          continue  # stopped earlier: its report stands
        p.results = results[r]
        if not reporting[r]:
          continue  # a resumed run's stopped replica: its results, unwritten
        if task.solved is not None and not p.solved:
          p.solved = bool(task.solved(results[r][task.solved_split]))
          p.solved_step = step if p.solved else None
        for split, metrics in results[r].items():
          writer.write(step, split, {**metrics, "examples_seen": p.examples,
                                     "solved": p.solved}, labels[r])
        if best_spec:
          improved[r] = _update_best(p, step, results[r], best_spec)
      record = _meta_record(progress, labels, time.time() - wall_start,
                            plan.current, best_spec)
      # The checkpoint commits first: it records the best evaluation, so a
      # rerun can redo a best checkpoint that a kill left unsaved.
      checkpoints.save(state, program.train_batches.get_state(), record)
      if any(improved):
        if replicated:
          best_state = _merge_best(best_state, state, improved)
        best_checkpoints.save(state if not replicated else best_state,
                              program.train_batches.get_state(), record)
      last_good = step
      if on_evaluation is not None:
        on_evaluation(step, results[0] if not replicated else
                      replicas_lib.mean_and_sd([p.results for p in progress])[0])

    def resume_point() -> str:
      if last_good is None:
        return "no checkpoint was saved yet: a rerun starts from step 0"
      return (f"rerun the same command to resume from checkpoint {last_good} "
              f"in {checkpoints.directory}")

    bar = tqdm.tqdm(total=None if budget_steps == math.inf else budget_steps,
                    initial=step, desc=config.task, unit="step",
                    disable=not (config.get("progress_bar", True) and main),
                    mininterval=1.0)
    cleanup.callback(bar.close)
    try:
      active = [training(p) for p in progress]
      while step < budget_steps and any(active):
        batch = next(program.train_batches)
        if step == 0 or step == latest:
          program.check_batch(batch, f"training batch at step {step}")
        state, metrics = program.train_step(state, batch, active)
        step += 1
        for r, count in enumerate(program.examples_in(batch)):
          if active[r]:
            progress[r].examples += count
        pending.append((metrics, list(active)))
        bar.update(1)
        fault_point("train_step")
        if step % config.log_every_steps == 0:
          flush_logs()
        reporting = [a and (step % config.eval_every_steps == 0
                            or step >= budget_steps
                            or progress[r].examples >= budget_examples)
                     for r, a in enumerate(active)]
        if any(reporting):
          evaluate_and_checkpoint(reporting)
        active = [a and training(p) for a, p in zip(active, progress)]
      if not evaluated:  # resumed a finished run: report, write nothing
        for p, results in zip(progress, program.evaluate(state.eval_params())):
          p.results = results
    except KeyboardInterrupt:
      raise RunInterrupted(f"interrupted at step {step}; {resume_point()}") from None

  summary = _summary(step, progress, labels, time.time() - wall_start, best_spec)
  if program.num_devices > 1 or jax.process_count() > 1:
    summary.update(num_devices=program.num_devices,
                   num_processes=jax.process_count())
  if main:
    workdir_lib.write_json(os.path.join(workdir, "summary.json"), summary)
  return summary


def _update_best(p: ReplicaProgress, step: int, results, best_spec) -> bool:
  """Records results as p's best if they are; ValueError if best_metric is
  not among them."""
  split, metric, mode = best_spec
  if split not in results or metric not in results[split]:
    raise ValueError(
        f"best_metric: {split}/{metric} is not reported; the task reports "
        + ", ".join(f"{s}/{m}" for s in results for m in results[s]))
  value = float(results[split][metric])
  if _is_better(value, (p.best or {}).get("value"), mode):
    p.best = {"step": step, "value": value, "metrics": results}
    return True
  return False
