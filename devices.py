"""Data parallelism over a 1-D device mesh, and multi-host start-up.

A run trains on a `Mesh` of config.num_devices devices (0: all of
`jax.devices()`, every process's) with one axis, 'data'. The train state is
replicated (`NamedSharding(mesh, P())`) except the carry of truncated BPTT,
which is split like the batch; each batch is split on its batch axis
(`P('data')`); the jitted steps keep those layouts
(`with_sharding_constraint`), and XLA's SPMD partitioner inserts the
gradient all-reduce. Sharding never changes what is computed, only where:
a leaf whose batch axis does not divide by the device count (a last, smaller
eval batch; the node arrays of packed trees) is replicated instead, which is
still exact, only not faster.

Multi-host (`initialize_multihost`): one process per host under JAX's own
multi-controller runtime. Every process runs the same deterministic input
pipeline (its position is in each checkpoint) and places only the rows that
belong to its own devices (`jax.make_array_from_callback`), so a run's
numbers do not depend on how many processes share it.

With K replicas (replicas.py) the replicas' stacked batches [K, B, ...] are
split on B, their batch axis: every device holds all K models and 1/N of
each one's batch.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"

# Set by the cluster (or by hand) for a multi-process run; JAX reads it too.
COORDINATOR_VARIABLE = "JAX_COORDINATOR_ADDRESS"


def initialize_multihost(coordinator_address: str | None = None,
                         num_processes: int | None = None,
                         process_id: int | None = None) -> None:
  """jax.distributed.initialize(), once, before any computation.

  With no arguments JAX finds the cluster (Slurm, Kubernetes, Open MPI,
  Cloud TPU) or reads JAX_COORDINATOR_ADDRESS; pass all three to start
  processes by hand (e.g. two on one machine: '127.0.0.1:PORT', 2, 0 and 1).
  """
  if jax.distributed.is_initialized():
    return
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)


def multihost_requested() -> bool:
  """Whether the environment asks for a multi-process run (the launcher's
  --multihost flag asks explicitly)."""
  return bool(os.environ.get(COORDINATOR_VARIABLE))


def is_main_process() -> bool:
  """Process 0 writes the run's files (metrics, TensorBoard, summary);
  every process takes part in checkpoints."""
  return jax.process_index() == 0


def resolve_num_devices(config) -> int:
  """config.num_devices, 0 meaning every visible device; ValueError when
  more are asked than there are, when a multi-process run would leave a
  process out, or when batch_size does not divide by it."""
  available = jax.device_count()
  wanted = config.get("num_devices", 0) or available
  if wanted > available:
    raise ValueError(f"num_devices: {wanted} asked, {available} visible "
                     f"({jax.devices()[0].platform}); use at most {available}, "
                     f"or 0 for all")
  if jax.process_count() > 1 and wanted != available:
    raise ValueError(f"num_devices: a run of {jax.process_count()} processes "
                     f"uses all {available} devices; got {wanted} (use 0)")
  if config.batch_size % wanted:
    raise ValueError(
        f"batch_size: {config.batch_size} does not divide by the {wanted} "
        f"devices in use (the global batch is split evenly across them); use "
        f"a multiple of {wanted}, or fewer devices with --config.num_devices")
  return wanted


@dataclasses.dataclass(frozen=True)
class DataParallel:
  """The mesh of a run and how its arrays lie on it.

  batch_axis: the axis of a batch (and of the carry) that is split: 0, or 1
  for replicas' stacked [K, B, ...] arrays.
  """
  mesh: Mesh
  batch_axis: int = 0

  @classmethod
  def on_devices(cls, num_devices: int, batch_axis: int = 0) -> DataParallel:
    """The mesh of the first num_devices of jax.devices()."""
    devices = jax.devices()[:num_devices]
    return cls(Mesh(np.asarray(devices), (DATA_AXIS,)), batch_axis)

  @property
  def num_devices(self) -> int:
    return self.mesh.size

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, PartitionSpec())

  def leaf_sharding(self, leaf) -> NamedSharding:
    """Split on the batch axis when it divides by the device count, else
    replicated."""
    shape = np.shape(leaf)
    axis = self.batch_axis
    if len(shape) > axis and shape[axis] % self.num_devices == 0 and shape[axis]:
      return NamedSharding(self.mesh, PartitionSpec(*[None] * axis, DATA_AXIS))
    return self.replicated

  def put_batch(self, tree) -> Any:
    """Host (or device) arrays, the same on every process -> global arrays,
    each split by leaf_sharding; each process places its own devices' rows."""
    return jax.tree_util.tree_map(
        lambda leaf: _global_array(leaf, self.leaf_sharding(leaf)), tree)

  def put_replicated(self, tree) -> Any:
    return jax.tree_util.tree_map(
        lambda leaf: _global_array(leaf, self.replicated), tree)

  def put_state(self, state):
    """A train state laid out for the mesh: the carry split like the batch,
    the rest replicated."""
    placed = self.put_replicated(state.replace(carry=()))
    return placed.replace(carry=self.put_batch(state.carry))

  def settle(self, outputs):
    """`outputs` of a step, waited for on a CPU: XLA's CPU runtime can
    deadlock in a collective when several multi-device programs are in
    flight, so there each step finishes before the next is dispatched (an
    accelerator keeps dispatching ahead)."""
    if self.mesh.devices.flat[0].platform == "cpu":
      jax.block_until_ready(outputs)
    return outputs

  def constrain_batch(self, tree) -> Any:
    """Inside jit: `tree`'s leaves laid out as put_batch lays them out."""
    return jax.tree_util.tree_map(
        lambda x: jax.lax.with_sharding_constraint(x, self.leaf_sharding(x)),
        tree)

  def constrain_replicated(self, tree) -> Any:
    return jax.tree_util.tree_map(
        lambda x: jax.lax.with_sharding_constraint(x, self.replicated), tree)

  def constrain_state(self, state):
    """Inside jit: the layout of put_state."""
    return self.constrain_replicated(state.replace(carry=())).replace(
        carry=self.constrain_batch(state.carry))


def _global_array(leaf, sharding: NamedSharding) -> jax.Array:
  if isinstance(leaf, jax.Array) and leaf.sharding == sharding:
    return leaf  # already laid out (e.g. the carry an eval step returned)
  if jax.process_count() == 1:
    return jax.device_put(leaf, sharding)
  host = np.asarray(jax.device_get(leaf) if isinstance(leaf, jax.Array)
                    and leaf.is_fully_addressable else leaf)
  return jax.make_array_from_callback(host.shape, sharding,
                                      lambda index: host[index])


def host_value(array) -> np.ndarray:
  """The whole value of a (possibly multi-process) array on this host; a
  collective when the array spans other processes, so every process calls
  it in the same order."""
  if isinstance(array, jax.Array) and not array.is_fully_addressable:
    if array.is_fully_replicated:
      return np.asarray(array.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(array, tiled=True))
  return np.asarray(jax.device_get(array))
