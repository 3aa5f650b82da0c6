"""python -m experiments.listops --workdir=DIR
     [--config=experiments/configs/listops.py:tree_lstm]"""

from experiments import launch

if __name__ == "__main__":
  launch.main(launch.config_path("listops.py:tree_lstm"))
