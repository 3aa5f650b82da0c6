"""Investigation scripts behind the design of the fast path (models/fused.py).

Each is run as `python -m tools.perf.NAME`; docs/performance.md has what
they measured. The speed comparisons a user runs are in benchmarks/.
"""
