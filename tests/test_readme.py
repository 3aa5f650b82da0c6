"""The README's core-API example runs and gives the shapes its comments claim."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_core_api_example_runs():
  with open(os.path.join(ROOT, "README.md")) as f:
    text = f.read()
  block = re.search(r"```python\n(import jax, jax.numpy.*?)```", text, re.S)
  assert block, "README lost its core API example"
  namespace = {}
  exec(block.group(1), namespace)  # pylint: disable=exec-used
  assert namespace["ys"].shape == (4, 10, 32)
  assert namespace["final"].c.shape == (4, 32)
  assert namespace["bi"].shape == (4, 10, 64)
  assert namespace["top"].shape == (4, 10, 32) and len(namespace["finals"]) == 2
