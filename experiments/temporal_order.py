"""python -m experiments.temporal_order --workdir=DIR [--config.<key>=<value> ...]"""

from experiments import launch

if __name__ == "__main__":
  launch.main(launch.config_path("temporal_order.py"))
