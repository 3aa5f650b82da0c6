"""python -m experiments.music --workdir=DIR [--config=experiments/configs/music.py:gru]"""

from experiments import launch

if __name__ == "__main__":
  launch.main(launch.config_path("music.py:gru"))
