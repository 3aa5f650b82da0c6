"""What the first call after another library's (or an idle pause) costs.

  python -m tools.perf.cold_call [--shape=small] [--mode=forward] [--cold_rounds=15]

Times this project's LSTM layer (as in rnn_speed) right after its own call,
right after a torch nn.LSTM call, and after a 0.5 s pause; and torch's layer
after its own call and after ours. Prints medians over rounds. This is why
`timing.time_interleaved` makes an untimed call before each implementation's
timed calls. Needs torch (`pip install -r requirements-bench.txt`).
"""

from __future__ import annotations

import os
import statistics
import time

from absl import app, flags

from benchmarks import rnn_speed

flags.DEFINE_enum("shape", "small", sorted(rnn_speed.SHAPES), "Shape.")
flags.DEFINE_enum("mode", "forward", ["train", "forward"], "train or forward.")
flags.DEFINE_integer("cold_rounds", 15, "Rounds (median is reported).")


def _seconds(run) -> float:
  start = time.perf_counter()
  run()
  return time.perf_counter() - start


def main(argv):
  del argv
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count() or 1)
  f = flags.FLAGS
  shape = rnn_speed.SHAPES[f.shape]
  ours = rnn_speed.ours("lstm", shape, f.mode).run
  peer = rnn_speed.torch_rnn("lstm", shape, f.mode).run
  for run in (ours, peer, ours, peer):
    run()
  cases = {"ours after ours": (ours, ours), "ours after torch": (peer, ours),
           "ours after a 0.5 s pause": (None, ours),
           "torch after torch": (peer, peer), "torch after ours": (ours, peer)}
  samples = {name: [] for name in cases}
  for _ in range(f.cold_rounds):
    for name, (before, timed) in cases.items():
      if before is None:
        time.sleep(0.5)
      else:
        before()
      samples[name].append(_seconds(timed))
  print(f"lstm {f.shape} {f.mode}, {f.cold_rounds} rounds")
  for name, times in samples.items():
    print(f"  {name:26s} {statistics.median(times) * 1e3:8.2f} ms")


if __name__ == "__main__":
  app.run(main)
