"""Test-wide settings: catch implicit rank promotion, parse absl flags once."""

import os
import sys

# Two CPU cores on CI: keep XLA from oversubscribing them.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
from absl import flags  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

if not flags.FLAGS.is_parsed():
  flags.FLAGS.mark_as_parsed()
