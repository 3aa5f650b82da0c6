"""Tasks by name. Each module has `build(config) -> tasks.base.Task`."""

from __future__ import annotations

import importlib

_TASKS = {
    "adding": "tasks.adding",
    "temporal_order": "tasks.temporal_order",
    "reber": "tasks.reber",
    "ptb": "tasks.ptb",
    "addition": "tasks.addition",
    "reversal": "tasks.reversal",
    "nmt": "tasks.nmt",
    "listops": "tasks.listops",
    "parse": "tasks.parse",
    "sentiment": "tasks.sentiment",
    "tagging": "tasks.tagging",
    "music": "tasks.music",
    "captioning": "tasks.captioning",
}


def names() -> list[str]:
  return sorted(_TASKS)


def build(config):
  """Builds the task named config.task; unknown names list the known ones."""
  if config.task not in _TASKS:
    raise ValueError(f"task: unknown task {config.task!r}; known tasks are "
                     f"{names()}")
  return importlib.import_module(_TASKS[config.task]).build(config)
