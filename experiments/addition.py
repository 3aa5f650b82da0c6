"""python -m experiments.addition --workdir=DIR [--config=experiments/configs/addition.py[:ARG]]"""

from experiments import launch

if __name__ == "__main__":
  launch.main(launch.config_path("addition.py"))
