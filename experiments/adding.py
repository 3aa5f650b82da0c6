"""python -m experiments.adding --workdir=DIR [--config.cell=gru --config.seq_len=200]"""

from experiments import launch

if __name__ == "__main__":
  launch.main(launch.config_path("adding.py"))
