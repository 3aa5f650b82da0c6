"""python -m experiments.sentiment --workdir=DIR [--config=experiments/configs/sentiment.py:imdb]"""

from experiments import launch

if __name__ == "__main__":
  launch.main(launch.config_path("sentiment.py:imdb"))
