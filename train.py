"""One generic training loop for every task: `train_and_evaluate(config, workdir)`.

The task (tasks/) supplies model, loss, metrics and data; this module owns
the optimiser, the jitted steps, checkpoints, metrics files and stopping.

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
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from typing import Any

import flax
import ml_collections
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import tqdm

import input_pipeline
import tasks as tasks_lib
from tasks import base as task_base
from models import cells

# Keys that may change between a run and its resumption (budgets and
# reporting cadence); any other difference is an error.
RESUMABLE_KEYS = frozenset({"num_train_steps", "max_train_examples",
                            "stop_when_solved", "progress_bar"})


class CheckpointError(RuntimeError):
  """A checkpoint exists but cannot be restored."""


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or infinite loss."""


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


def make_schedule(config) -> optax.Schedule:
  """Learning rate per step: warmup, then constant, cosine or step decay.

  'cosine' decays to 0 over lr_decay_steps (default: num_train_steps) and
  stays there. 'step' multiplies the rate by lr_decay_factor every lr_decay_every_steps
  steps once lr_decay_start_step is reached (Zaremba et al.'s schedule).
  """
  lr = config.learning_rate
  name = config.get("lr_schedule", "constant")
  if name not in _SCHEDULES:
    raise ValueError(f"lr_schedule: unknown schedule {name!r}; known are "
                     f"{list(_SCHEDULES)}")
  if name == "constant":
    schedule = optax.constant_schedule(lr)
  elif name == "cosine":
    horizon = config.get("lr_decay_steps", 0) or config.num_train_steps
    schedule = optax.cosine_decay_schedule(lr, max(horizon, 1))
  else:
    start, every = config.lr_decay_start_step, config.lr_decay_every_steps
    factor = config.lr_decay_factor

    def schedule(step):
      decays = jnp.maximum(0, (step - start) // every + 1)
      return lr * factor ** decays
  warmup = config.get("warmup_steps", 0)
  if warmup:
    schedule = optax.join_schedules(
        [optax.linear_schedule(0.0, lr, warmup), schedule], [warmup])
  return schedule


def make_optimizer(config) -> optax.GradientTransformation:
  name = config.optimizer
  if name not in _OPTIMIZERS:
    raise ValueError(f"optimizer: unknown optimizer {name!r}; known are "
                     f"{list(_OPTIMIZERS)}")
  schedule = make_schedule(config)
  if name == "sgd":
    opt = optax.sgd(schedule)
  elif name == "momentum":
    opt = optax.sgd(schedule, momentum=config.momentum, nesterov=False)
  elif name == "adam":
    opt = optax.adam(schedule)
  else:
    opt = optax.rmsprop(schedule)
  parts = []
  if config.grad_clip_norm:
    parts.append(optax.clip_by_global_norm(config.grad_clip_norm))
  parts.append(opt)
  return optax.chain(*parts)


# ----------------------------------------------------------------------------
# Steps.

def make_steps(task, tx, ema_decay: float = 0.0):
  """-> (train_step, eval_step), both jitted; compiled once per batch shape.

  ema_decay > 0 keeps ema = decay * ema + (1 - decay) * params after each
  step (an exponential moving average, Polyak & Juditsky 1992), and the
  evaluations use it.
  """

  def train_step(state: TrainState, batch):
    rng = jax.random.fold_in(state.rng, state.step)

    def loss_fn(params):
      outputs, carry = task.apply(params, batch, rng, state.carry, train=True)
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

  def eval_step(params, batch, carry):
    outputs, carry = task.apply(params, batch, None, carry, train=False)
    return task.loss(outputs, batch)[1], carry

  return jax.jit(train_step, donate_argnums=0), jax.jit(eval_step)


def evaluate(task, eval_step, params) -> dict[str, dict[str, float]]:
  """Every eval split in full -> {split: {metric: value}}."""
  results = {}
  for split, batches in task.eval_splits.items():
    totals, carry = None, task.carry_for(batches[0])
    for batch in batches:
      sums, carry = eval_step(params, batch, carry)
      totals = sums if totals is None else jax.tree_util.tree_map(
          jnp.add, totals, sums)
    results[split] = task.summarize(jax.device_get(totals))
  return results


# ----------------------------------------------------------------------------
# Files in the workdir.

class MetricsWriter:
  """metrics.jsonl + TensorBoard + log lines."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    self._tb_dir = os.path.join(workdir, "tensorboard")

  def drop_after(self, step: int) -> None:
    """Forgets lines from beyond `step` (written before a crash)."""
    if not os.path.exists(self.path):
      return
    with open(self.path) as f:
      kept = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
    with open(self.path, "w") as f:
      f.writelines(kept)

  def write(self, step: int, split: str, metrics: dict[str, Any]) -> None:
    record = {"step": int(step), "split": split, **metrics}
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")
    if self._tb is None:
      import tensorboardX  # pylint: disable=g-import-not-at-top
      self._tb = tensorboardX.SummaryWriter(self._tb_dir)
    for name, value in metrics.items():
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        self._tb.add_scalar(f"{split}/{name}", value, step)
    shown = ", ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in metrics.items())
    print(f"step {step} {split}: {shown}", flush=True)

  def close(self):
    if self._tb is not None:
      self._tb.close()


def _restore(manager, directory: str, step: int, like: TrainState, **extra):
  """Restores `step`'s train state (shaped like `like`) and the `extra` items.

  Every orbax failure (it raises many types for damaged files) becomes one
  CheckpointError naming the checkpoint and what to do.
  """
  abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like)
  try:
    return manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), **extra))
  except Exception as e:  # pylint: disable=broad-except
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
    raise CheckpointError(
        f"checkpoint {step} in {directory} cannot be restored "
        f"({type(e).__name__}: {first_line[:200]}). Nothing was deleted: "
        f"move that step's directory away to resume from an earlier one, "
        f"or use a new --workdir.") from e


class Checkpoints:
  """Orbax CheckpointManager over (train state, data position, metadata)."""

  def __init__(self, directory: str, max_to_keep: int):
    self.directory = directory
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True,
        enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(directory, options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, state: TrainState, data_state: dict, meta: dict) -> None:
    step = int(state.step)
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state),
        meta=ocp.args.JsonSave(meta)), force=True)
    self._manager.wait_until_finished()

  def restore(self, step: int, like: TrainState):
    restored = _restore(self._manager, self.directory, step, like,
                        data=ocp.args.JsonRestore(), meta=ocp.args.JsonRestore())
    state = restored["state"]
    bad = [jax.tree_util.keystr(path) for path, leaf in
           jax.tree_util.tree_leaves_with_path(state.params)
           if not np.all(np.isfinite(np.asarray(leaf)))]
    if bad:
      raise CheckpointError(f"checkpoint {step} in {self.directory} holds "
                            f"non-finite params at {bad[:3]}")
    return state, restored["data"], restored["meta"]

  def close(self):
    self._manager.close()


def _hardware() -> str:
  device = jax.devices()[0]
  return (f"{device.platform}:{device.device_kind} x{jax.device_count()}, "
          f"{os.cpu_count()} host cores, {platform.machine()}")


def _config_dict(config) -> dict:
  return json.loads(config.to_json_best_effort()) if hasattr(
      config, "to_json_best_effort") else dict(config)


def _check_resumed_config(workdir: str, config) -> None:
  path = os.path.join(workdir, "config.json")
  current = _config_dict(config)
  if os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
    resumable = set(RESUMABLE_KEYS)
    if current.get("lr_schedule") == "cosine" and not current.get("lr_decay_steps"):
      resumable.discard("num_train_steps")  # it sets the cosine horizon
    differ = sorted(k for k in set(saved) | set(current)
                    if k not in resumable and saved.get(k) != current.get(k))
    if differ:
      details = "; ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}"
                          for k in differ[:5])
      hint = ""
      if any(k not in saved for k in differ):
        hint = (f". Keys missing from {path} were added to the project after "
                f"that run; write them there with the values that reproduce it "
                f"to resume")
      raise ValueError(f"workdir {workdir} holds a run with a different config "
                       f"({details}); use a new --workdir or the same config"
                       f"{hint}")
  with open(path, "w") as f:
    json.dump(current, f, indent=2, sort_keys=True)


def validate_config(config) -> None:
  """Fails fast, with the key's name, on values that would fail much later."""
  if "cell" in config:
    cells.get_cell(config.cell, **task_base.cell_options(config))
  for key in ("batch_size", "eval_every_steps", "log_every_steps"):
    if config[key] <= 0:
      raise ValueError(f"{key}: expected a positive integer, got {config[key]}")
  if not 0.0 <= config.get("ema_decay", 0.0) < 1.0:
    raise ValueError(f"ema_decay: expected a value in [0, 1), got {config.ema_decay}")
  if config.eval_every_steps % config.log_every_steps:
    raise ValueError(f"eval_every_steps ({config.eval_every_steps}) must be a "
                     f"multiple of log_every_steps ({config.log_every_steps})")
  if config.num_train_steps <= 0 and not config.get("max_train_examples"):
    raise ValueError("num_train_steps: set a positive step budget or "
                     "max_train_examples")
  parse_best_metric(config.get("best_metric", ""))


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

BEST_DIR = "best_checkpoint"  # under WORKDIR: the state at the best evaluation


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
                 overrides: dict[str, Any] | None = None, *, best: bool = False):
  """A trained run, read-only: -> (config, task, eval params, step).

  Reads WORKDIR/config.json, applies `overrides` (existing keys only: e.g.
  {'eval_batch_size': 1}), rebuilds the task and restores checkpoint `step`
  (default: the latest). best=True reads the checkpoint kept by
  config.best_metric instead (WORKDIR/best_checkpoint). The params are the
  ones evaluations use (the EMA when the run kept one). Safe while the run is
  still training.
  """
  workdir = os.path.abspath(os.path.expanduser(workdir))
  config = read_run_config(workdir)
  for key, value in (overrides or {}).items():
    if key not in config:
      raise ValueError(f"override {key!r}: not a key of the run's config; keys "
                       f"are {sorted(config)}")
    config[key] = value
  task = tasks_lib.build(config)
  like = initial_state(config, task, make_optimizer(config))
  params, step = restore_eval_params(workdir, like, step, best=best)
  return config, task, params, step


def restore_eval_params(workdir: str, like: TrainState, step: int | None = None,
                        *, best: bool = False):
  """Read-only restore of checkpoint `step` (default: the latest; best=True:
  the one kept by config.best_metric) into the structure of `like`.

  Returns (the params evaluations use, the step). Errors are ValueError (no
  such checkpoint) or CheckpointError (damaged files).
  """
  workdir = os.path.abspath(os.path.expanduser(workdir))
  options = ocp.CheckpointManagerOptions(read_only=True, create=False,
                                         cleanup_tmp_directories=False)
  directory = os.path.join(workdir, BEST_DIR if best else "checkpoints")
  if best and not os.path.isdir(directory):
    raise ValueError(f"workdir: {workdir} has no {BEST_DIR} (the run kept none: "
                     f"set config.best_metric, e.g. 'valid/perplexity:min')")
  with ocp.CheckpointManager(directory, options=options) as manager:
    available = list(manager.all_steps())
    step = manager.latest_step() if step is None else step
    if step is None:
      raise ValueError(f"workdir: {workdir} has no checkpoint yet")
    if step not in available:
      raise ValueError(f"step: no checkpoint {step} in {directory}; there are "
                       f"{sorted(available)}")
    restored = _restore(manager, directory, step, like)
  return restored["state"].eval_params(), int(step)


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


def train_and_evaluate(config, workdir: str) -> dict[str, Any]:
  """Trains config.task until a budget or the solved criterion; returns summary.

  Returns {'step', 'examples_seen', 'solved', 'metrics': {split: {...}},
  'wall_time_s', 'hardware'}, also written to WORKDIR/summary.json.
  """
  validate_config(config)
  workdir = os.path.abspath(os.path.expanduser(workdir))  # orbax needs absolute
  task = tasks_lib.build(config)
  os.makedirs(workdir, exist_ok=True)
  _check_resumed_config(workdir, config)
  _check_run_files(workdir, task)

  tx = make_optimizer(config)
  schedule = make_schedule(config)  # for reporting the rate in use
  state = initial_state(config, task, tx)

  checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"),
                            config.max_checkpoints_to_keep)
  best_spec = parse_best_metric(config.get("best_metric", ""))
  best_checkpoints = (Checkpoints(os.path.join(workdir, BEST_DIR), 1)
                      if best_spec else None)
  writer = MetricsWriter(workdir)
  meta = {"examples_seen": 0, "wall_time_s": 0.0, "solved": False}
  latest = checkpoints.latest_step()
  if latest is not None:
    state, data_state, meta = checkpoints.restore(latest, state)
    task.train_batches.set_state(data_state)
    writer.drop_after(latest)
    print(f"Resumed from checkpoint {latest} in {checkpoints.directory}", flush=True)

  train_step, eval_step = make_steps(task, tx, config.get("ema_decay", 0.0))
  step = int(state.step)
  examples = int(meta["examples_seen"])
  budget_examples = config.get("max_train_examples") or math.inf
  budget_steps = config.num_train_steps if config.num_train_steps > 0 else math.inf
  wall_start = time.time() - float(meta["wall_time_s"])
  results = None
  solved = bool(meta["solved"])
  best = meta.get("best")  # {'step', 'value', 'metrics'} when best_metric is set
  stop_when_solved = config.get("stop_when_solved", True)
  pending, window = [], []  # per-step metrics not yet read back / since last eval
  last_good = latest

  def flush_logs():
    nonlocal pending
    if not pending:
      return
    stacked = jax.device_get(jax.tree_util.tree_map(lambda *x: jnp.stack(x), *pending))
    losses = stacked["loss"]
    if not np.all(np.isfinite(losses)):
      first_bad = step - len(losses) + int(np.argmin(np.isfinite(losses))) + 1
      kept = (f"the last good checkpoint (step {last_good}) in "
              f"{checkpoints.directory} is kept" if last_good is not None
              else "no checkpoint had been written")
      raise NonFiniteLossError(
          f"non-finite loss ({losses[~np.isfinite(losses)][0]}) at step "
          f"{first_bad}; {kept}. Lower learning_rate or set grad_clip_norm.")
    window.append(stacked)
    progress.set_postfix(loss=f"{float(losses[-1]):.4g}", refresh=False)
    pending = []

  def evaluate_and_checkpoint():
    nonlocal results, solved, last_good, window, best
    flush_logs()
    if window:
      train_metrics = {k: float(np.mean(np.concatenate([w[k] for w in window])))
                       for k in window[0]}
      train_metrics["learning_rate"] = float(schedule(step - 1))
      writer.write(step, "train", {**train_metrics, "examples_seen": examples})
      window = []
    results = evaluate(task, eval_step, state.eval_params())
    if task.solved is not None:
      solved = solved or task.solved(results[task.solved_split])
    for split, metrics in results.items():
      writer.write(step, split, {**metrics, "examples_seen": examples,
                                 "solved": solved})
    record = {"examples_seen": examples, "solved": solved,
              "wall_time_s": time.time() - wall_start}
    if best_spec:
      split, metric, mode = best_spec
      if split not in results or metric not in results[split]:
        raise ValueError(
            f"best_metric: {split}/{metric} is not reported; the task reports "
            + ", ".join(f"{s}/{m}" for s in results for m in results[s]))
      value = float(results[split][metric])
      if _is_better(value, (best or {}).get("value"), mode):
        best = {"step": step, "value": value, "metrics": results}
        best_checkpoints.save(state, task.train_batches.get_state(),
                              {**record, "best": best})
      record["best"] = best
    checkpoints.save(state, task.train_batches.get_state(), record)
    last_good = step

  progress = tqdm.tqdm(total=None if budget_steps == math.inf else budget_steps,
                       initial=step, desc=config.task, unit="step",
                       disable=not config.get("progress_bar", True),
                       mininterval=1.0)
  try:
    while step < budget_steps and examples < budget_examples and not (
        solved and stop_when_solved):
      batch = next(task.train_batches)
      if step == 0 or step == latest:
        input_pipeline.check_batch(batch, f"training batch at step {step}")
      state, metrics = train_step(state, batch)
      step += 1
      examples += task.examples_in(batch)
      pending.append(metrics)
      progress.update(1)
      if step % config.log_every_steps == 0:
        flush_logs()
      if step % config.eval_every_steps == 0:
        evaluate_and_checkpoint()
    if last_good != step:
      evaluate_and_checkpoint()
    elif results is None:  # resumed a finished run: report, write nothing
      results = evaluate(task, eval_step, state.eval_params())
  finally:
    progress.close()
    writer.close()
    checkpoints.close()
    if best_checkpoints is not None:
      best_checkpoints.close()

  summary = {"step": step, "examples_seen": examples, "solved": solved,
             "metrics": results, "wall_time_s": round(time.time() - wall_start, 1),
             "hardware": _hardware()}
  if best_spec:
    summary["best"] = best
  with open(os.path.join(workdir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  return summary
