"""python -m experiments.ptb --workdir=DIR [--config=experiments/configs/ptb.py:medium]"""

from experiments import launch

if __name__ == "__main__":
  launch.main(launch.config_path("ptb.py"))
