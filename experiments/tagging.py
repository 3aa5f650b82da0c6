"""python -m experiments.tagging --workdir=DIR [--config=experiments/configs/tagging.py:ud_he]"""

from experiments import launch

if __name__ == "__main__":
  launch.main(launch.config_path("tagging.py:ud_he"))
