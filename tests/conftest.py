"""Test-wide settings: catch implicit rank promotion, parse absl flags once."""

import os
import sys

# Two CPU cores on CI: keep XLA from oversubscribing them.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
# The suite compiles hundreds of small programs and runs each a few times, so
# XLA's compile time dominates it. Without LLVM's optimisation passes the
# same tests (values checked to tolerances against loops, finite differences
# and peers) ran about a third faster here: test_seq2seq.py in 57 s instead of
# 89 s. Subprocesses the tests start inherit these flags. Training and
# benchmarks outside the tests keep XLA's defaults.
for _flag in ("--xla_backend_optimization_level=0",
              "--xla_llvm_disable_expensive_passes=true"):
  if _flag.split("=")[0] not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " " + _flag
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
from absl import flags  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

if not flags.FLAGS.is_parsed():
  flags.FLAGS.mark_as_parsed()
