"""python -m experiments.temporal_order --workdir=DIR [--config.<key>=<value> ...]"""

from experiments import launch

if __name__ == "__main__":
  launch.main("experiments/configs/temporal_order.py")
