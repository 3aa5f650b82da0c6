"""python -m experiments.reversal --workdir=DIR [--config=experiments/configs/reversal.py[:ARG]]"""

from experiments import launch

if __name__ == "__main__":
  launch.main(launch.config_path("reversal.py"))
