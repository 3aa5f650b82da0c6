"""Orbax checkpoints of a run: save, checked restore, and the best checkpoint.

A checkpoint of step N (WORKDIR/checkpoints/N/) holds three items: the train
state, the training data iterator's position and a JSON meta record (examples
seen, wall time, solved, the best evaluation so far and the config the run
was trained under). Each save records in the meta a sha256 over every array of
the train state (`state_checksum`); a restore recomputes it and refuses a
state that does not match, so flipped bytes in an array file are found before
training continues from them (checkpoints saved before checksums existed are
restored unchecked).

When config.best_metric is set, WORKDIR/best_checkpoint/ holds one more
checkpoint: the state at the best evaluation. The regular checkpoint commits
first and the best one second, since the regular one's meta records the best
evaluation: a run killed between the two saves redoes the best checkpoint
from the restored state on rerun (`reconcile_best_checkpoint`).

A checkpoint that cannot be restored raises CheckpointError naming the
checkpoint and the earlier step to fall back to. Nothing is deleted: the
damaged checkpoint stays for inspection, and the error names the earlier
step because that is where a rerun resumes once the damaged step's directory
is moved away, so the user knows what is lost before choosing. A config
that disagrees with a checkpoint (other parameter shapes or another optimizer
state) raises ValueError instead, since the checkpoint itself is intact.

Restores lay the optimizer state out as the optimizer of the config the
checkpoint was saved under lays it out, then move its arrays into the
structure of the config in use; callers pass the function that builds an
optimizer from a config (train.make_optimizer), as this module does not
import train.

`fault_point` is a test hook that kills the process at named points of a
run; train.py passes it at its own points, this module inside and after
each save.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import logging
import os
import signal
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from etils import epath

import devices

# A train state (train.TrainState: step, params, opt_state, rng, carry,
# ema_params, eval_params()); this module takes it as a template.
TrainState = Any

# Builds the optimizer of a config (train.make_optimizer).
OptimizerFactory = Callable[[ml_collections.ConfigDict],
                            optax.GradientTransformation]

BEST_DIR = "best_checkpoint"  # under WORKDIR: the state at the best evaluation


class CheckpointError(RuntimeError):
  """A checkpoint exists but cannot be restored."""


# ----------------------------------------------------------------------------
# Test hook: deterministic kills.

FAULT_POINT_VARIABLE = "RNN_FAULT_POINT"
_fault_point_passes = collections.Counter()


def fault_point(name: str) -> None:
  """Test hook: SIGKILLs this process at a named point of the loop.

  With RNN_FAULT_POINT=NAME:COUNT in the environment, the COUNT-th pass
  through point NAME kills the process (as a power cut or the OOM killer
  would; tests/test_faults.py). Points: 'train_step' (after each step),
  'metrics_line' (after each metrics.jsonl line), 'checkpoint_written'
  (inside each checkpoint save: all files written, not yet committed),
  'checkpoint_saved' (after each committed save: regular, then best).
  Without the variable this does nothing.
  """
  spec = os.environ.get(FAULT_POINT_VARIABLE)
  if not spec:
    return
  target, _, count = spec.partition(":")
  if target != name:
    return
  _fault_point_passes[name] += 1
  if _fault_point_passes[name] == int(count or 1):
    os.kill(os.getpid(), signal.SIGKILL)


def _arm_checkpoint_written_point() -> None:
  """Makes orbax pass fault_point('checkpoint_written') just before it
  commits a save (renames its temporary directory); only when the test hook
  asks for that point."""
  if not os.environ.get(FAULT_POINT_VARIABLE, "").startswith(
      "checkpoint_written:"):
    return
  from orbax.checkpoint._src.path import atomicity  # pylint: disable=g-import-not-at-top
  rename = atomicity.async_path.rename
  if getattr(rename, "armed", False):
    return

  async def rename_after_fault_point(source, destination):
    fault_point("checkpoint_written")
    return await rename(source, destination)
  rename_after_fault_point.armed = True
  atomicity.async_path.rename = rename_after_fault_point


# ----------------------------------------------------------------------------
# Saving and restoring.

def check_max_checkpoints_to_keep(value: int) -> None:
  if not isinstance(value, int) or value < 1:
    raise ValueError(f"max_checkpoints_to_keep: expected an integer >= 1 (a "
                     f"rerun resumes from the latest checkpoint), got {value!r}")


def state_checksum(state) -> str:
  """sha256 over every array of a train state (dtype, shape, bytes), in tree
  order; saved in each checkpoint's meta and checked on restore."""
  digest = hashlib.sha256()
  for leaf in jax.tree_util.tree_leaves(state):
    array = np.ascontiguousarray(devices.host_value(leaf))
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


def _fallback_advice(manager, directory: str, step: int) -> str:
  """What to do about a checkpoint that cannot be used: the step to fall back to."""
  step_dir = os.path.join(directory, str(step))
  earlier = [s for s in manager.all_steps() if s < step]
  if earlier:
    return (f"Nothing was deleted: move {step_dir} away (e.g. to "
            f"{step_dir}.damaged) to resume from checkpoint {max(earlier)}, "
            f"or use a new --workdir.")
  return (f"Nothing was deleted; {directory} keeps no earlier checkpoint: move "
          f"{step_dir} away to start the run over, or use a new --workdir.")


def _silence_orbax_failure_noise() -> None:
  """After a failed restore, orbax's pending futures report the same failure
  again through asyncio's logger when they are collected (hundreds of lines
  at exit); the CheckpointError raised says all there is to say."""
  logging.getLogger("asyncio").setLevel(logging.CRITICAL)


def _restore_items(manager, directory: str, step: int, **items) -> dict:
  """manager.restore of the named items; every orbax failure (it raises many
  types for damaged files) becomes one CheckpointError naming the checkpoint
  and the step to fall back to."""
  try:
    return manager.restore(step, args=ocp.args.Composite(**items))
  except Exception as e:  # pylint: disable=broad-except
    _silence_orbax_failure_noise()
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
    raise CheckpointError(
        f"checkpoint {step} in {directory} cannot be restored "
        f"({type(e).__name__}: {first_line[:200]}). "
        f"{_fallback_advice(manager, directory, step)}") from e


def _saved_params_shapes(directory: str, step: int) -> dict[str, tuple] | None:
  """{param path: shape} as checkpoint `step` stores them; None if unreadable."""
  path = epath.Path(directory) / str(step) / "state"
  try:
    saved = ocp.StandardCheckpointHandler().metadata(path)["params"]
    return {jax.tree_util.keystr(p): tuple(m.shape)
            for p, m in jax.tree_util.tree_leaves_with_path(saved)}
  except Exception:  # pylint: disable=broad-except
    return None  # the restore itself reports what is wrong


def _check_config_fits(directory: str, step: int, like: TrainState) -> None:
  """ValueError when the config builds params of other shapes than checkpoint
  `step` holds: the config and the checkpoint disagree (the checkpoint is not
  damaged)."""
  saved = _saved_params_shapes(directory, step)
  if saved is None:
    return
  expected = {jax.tree_util.keystr(p): tuple(x.shape)
              for p, x in jax.tree_util.tree_leaves_with_path(like.params)}
  differ = sorted(k for k in set(saved) | set(expected)
                  if saved.get(k) != expected.get(k))
  if differ:
    details = "; ".join(f"params{k}: {saved.get(k)} in the checkpoint, "
                        f"{expected.get(k)} under the config" for k in differ[:3])
    raise ValueError(
        f"the config and checkpoint {step} in {directory} disagree ({details}); "
        f"the checkpoint is intact: use the config the run was trained with "
        f"(its config.json), without overrides that change the model")


def _template_for(meta: dict, like: TrainState,
                  make_optimizer: OptimizerFactory) -> TrainState:
  """`like`, with the optimizer state laid out as the config the checkpoint
  was saved under lays it out (e.g. without a clipping stage before the run
  was resumed with grad_clip_norm set); `make_optimizer` builds the optimizer
  of a config."""
  saved = meta.get("config")
  if not saved:
    return like
  try:
    saved_tx = make_optimizer(ml_collections.ConfigDict(saved))
  except (ValueError, KeyError, AttributeError):
    return like  # a config of an older version: restore as it is laid out now
  opt_state = jax.eval_shape(saved_tx.init, like.params)
  if (jax.tree_util.tree_structure(opt_state)
      == jax.tree_util.tree_structure(like.opt_state)):
    return like
  return like.replace(opt_state=opt_state)


def _into_structure(opt_state, like, directory: str, step: int):
  """The restored optimizer state's arrays in the structure of `like`'s (the
  optimizer of the config in use); ValueError if the arrays do not fit."""
  leaves = jax.tree_util.tree_leaves(opt_state)
  wanted = jax.tree_util.tree_leaves(like)
  if [(np.shape(a), np.result_type(a)) for a in leaves] != [
      (np.shape(b), np.result_type(b)) for b in wanted]:
    raise ValueError(
        f"the config and checkpoint {step} in {directory} disagree: the "
        f"config's optimizer keeps other state than the one the checkpoint "
        f"was trained with; change only settings such as learning_rate or "
        f"grad_clip_norm on resume")
  return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(like), leaves)


def _restore(manager, directory: str, step: int, like: TrainState,
             make_optimizer: OptimizerFactory, **extra):
  """Restores `step`'s train state into the structure of `like`, checked
  against the checksum saved with it, its meta, and the `extra` items
  (`make_optimizer` builds the optimizer of a config: see _template_for).

  Returns {'state', 'meta', **extra}. Errors: ValueError when the config and
  the checkpoint disagree (other shapes); CheckpointError, naming the
  checkpoint and the step to fall back to, when its files are damaged.
  """
  meta = _restore_items(manager, directory, step,
                        meta=ocp.args.JsonRestore())["meta"]
  template = _template_for(meta, like, make_optimizer)
  _check_config_fits(directory, step, template)
  abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template)
  restored = _restore_items(manager, directory, step,
                            state=ocp.args.StandardRestore(abstract), **extra)
  state = restored["state"]
  if template is not like:
    state = state.replace(opt_state=_into_structure(
        state.opt_state, like.opt_state, directory, step))
  expected = meta.get("checksum")  # absent from checkpoints of older versions
  if expected and state_checksum(state) != expected:
    raise CheckpointError(
        f"checkpoint {step} in {directory} is damaged: its arrays do not match "
        f"the sha256 recorded when it was saved. "
        f"{_fallback_advice(manager, directory, step)}")
  return {**restored, "state": state, "meta": meta}


class Checkpoints:
  """Orbax CheckpointManager over (train state, data position, metadata).

  Each save records state_checksum(state) in the metadata; restore checks it.
  `make_optimizer` builds the optimizer of a config (train.make_optimizer):
  restores lay the optimizer state out as the checkpoint's config did.
  """

  def __init__(self, directory: str, max_to_keep: int, *,
               make_optimizer: OptimizerFactory):
    check_max_checkpoints_to_keep(max_to_keep)
    _arm_checkpoint_written_point()
    self.directory = directory
    self._make_optimizer = make_optimizer
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True,
        enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(directory, options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def delete(self, step: int) -> None:
    self._manager.delete(step)

  def save(self, state: TrainState, data_state: dict, meta: dict) -> None:
    step = int(state.step)
    meta = {**meta, "checksum": state_checksum(state)}
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state),
        meta=ocp.args.JsonSave(meta)), force=True)
    self._manager.wait_until_finished()
    fault_point("checkpoint_saved")

  def restore(self, step: int, like: TrainState):
    restored = _restore(self._manager, self.directory, step, like,
                        self._make_optimizer, data=ocp.args.JsonRestore())
    state = restored["state"]
    bad = [jax.tree_util.keystr(path) for path, leaf in
           jax.tree_util.tree_leaves_with_path(state.params)
           if not np.all(np.isfinite(devices.host_value(leaf)))]
    if bad:
      raise CheckpointError(f"checkpoint {step} in {self.directory} holds "
                            f"non-finite params at {bad[:3]}")
    return state, restored["data"], restored["meta"]

  def close(self):
    self._manager.close()


@contextlib.contextmanager
def _absl_warnings_silenced():
  absl_logger = logging.getLogger("absl")
  level = absl_logger.level
  absl_logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    absl_logger.setLevel(level)


def restore_eval_params(workdir: str, like: TrainState, step: int | None = None,
                        *, best: bool = False, make_optimizer: OptimizerFactory):
  """Read-only restore of checkpoint `step` (default: the latest; best=True:
  the one kept by config.best_metric) into the structure of `like`;
  `make_optimizer` builds the optimizer of a config (train.make_optimizer).

  Returns (the params evaluations use, the step). Errors are ValueError (no
  such checkpoint or a config that disagrees with it) or CheckpointError
  (damaged files).
  """
  workdir = os.path.abspath(os.path.expanduser(workdir))
  options = ocp.CheckpointManagerOptions(read_only=True, create=False,
                                         cleanup_tmp_directories=False,
                                         save_interval_steps=0)
  directory = os.path.join(workdir, BEST_DIR if best else "checkpoints")
  if best and not os.path.isdir(directory):
    raise ValueError(f"workdir: {workdir} has no {BEST_DIR} (the run kept none: "
                     f"set config.best_metric, e.g. 'valid/perplexity:min')")
  with _absl_warnings_silenced():  # orbax warns that read_only is read-only
    manager = ocp.CheckpointManager(directory, options=options)
  with manager:
    available = list(manager.all_steps())
    step = manager.latest_step() if step is None else step
    if step is None:
      raise ValueError(f"workdir: {workdir} has no checkpoint yet")
    if step not in available:
      raise ValueError(f"step: no checkpoint {step} in {directory}; there are "
                       f"{sorted(available)}")
    restored = _restore(manager, directory, step, like, make_optimizer)
  return restored["state"].eval_params(), int(step)


def reconcile_best_checkpoint(best_checkpoints: Checkpoints,
                              restored_step: int | None, state: TrainState,
                              data_state: dict, meta: dict) -> None:
  """Makes best_checkpoint/ hold the best evaluation up to the restored step.

  Checkpoints commit before the best checkpoint, so a kill leaves the best
  one missing (killed between the two: the restored state is that best
  evaluation's state, saved again here) or with the previous best not yet
  deleted. Workdirs of older versions, which saved the best checkpoint first,
  can hold one from beyond the restored step: deleted, as training repeats
  that step exactly.
  """
  best = meta.get("best")
  best_step = best["step"] if best else None
  for step in best_checkpoints.all_steps():
    if step != best_step:
      best_checkpoints.delete(step)
  if best_step is None or best_step in best_checkpoints.all_steps():
    return
  if best_step == restored_step:
    best_checkpoints.save(state, data_state, meta)
  else:
    print(f"warning: {best_checkpoints.directory} lacks the checkpoint of the "
          f"best evaluation (step {best_step}); the next better evaluation "
          f"replaces it", flush=True)


def reconcile_replicas_best_checkpoint(best_checkpoints: Checkpoints,
                                       restored_step: int | None,
                                       state: TrainState, data_state: dict,
                                       meta: dict, bests: list[dict | None],
                                       merge) -> TrainState:
  """reconcile_best_checkpoint for K replicas: returns the state whose replica
  r is replica r's best evaluation (the loop merges later improvements into
  it), after making best_checkpoint/ hold it.

  best_checkpoint/ holds one merged state, saved at the last step any replica
  improved; `bests` are the replicas' best records ({'step', ...} or None)
  and `merge(old, new, [K] bool)` takes the flagged replicas from `new`.
  """
  steps = [b["step"] if b else None for b in bests]
  newest = max((s for s in steps if s is not None), default=None)
  saved = best_checkpoints.all_steps()
  if newest in saved:
    best = best_checkpoints.restore(newest, state)[0]
  else:
    older = [s for s in saved if newest is None or s < newest]
    best = (best_checkpoints.restore(max(older), state)[0] if older else
            jax.tree_util.tree_map(jnp.copy, state))
    if newest is not None and newest == restored_step:
      best = merge(best, state, [s == restored_step for s in steps])
      best_checkpoints.save(best, data_state, meta)
    elif newest is not None:
      print(f"warning: {best_checkpoints.directory} lacks the checkpoint of the "
            f"best evaluations (step {newest}); the next better evaluation of "
            f"each replica replaces it", flush=True)
  for step in best_checkpoints.all_steps():
    if step != newest:
      best_checkpoints.delete(step)
  return best
