"""python -m experiments.parse --workdir=DIR [--config=experiments/configs/parse.py:listops]"""

from experiments import launch

if __name__ == "__main__":
  launch.main(launch.config_path("parse.py:listops"))
