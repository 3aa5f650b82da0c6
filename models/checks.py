"""Argument checks shared by the whole project, so that every user error about
a choice reads the same: "NAME: expected one of (CHOICES), got VALUE"."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


def check_one_of(name: str, value: Any, choices: Collection, hint: str = "") -> None:
  """ValueError naming the option, its allowed values and what was given,
  unless `value` is one of `choices` (a tuple, list, set or dict's keys).
  `hint` is appended to the list of choices, e.g. " (or '' for the default)"."""
  try:
    ok = value in choices
  except TypeError:          # an unhashable value tested against a set or dict
    ok = False
  if not ok:
    shown = tuple(sorted(choices)) if isinstance(choices, (set, frozenset)) else tuple(choices)
    raise ValueError(f"{name}: expected one of {shown}{hint}, got {value!r}")
