"""Captions an image with a trained captioner, or scores a run's splits.

  python -m experiments.caption --workdir=DIR --image=PATH.png [--beam=5]
      [--attention_png=OUT.png]
  python -m experiments.caption --workdir=DIR --evaluate
  python -m experiments.caption --workdir=DIR --gallery=OUT.png [--split=test]
      [--count=8]
  python -m experiments.caption --workdir=DIR --table

--image: a PNG or JPEG (read with Pillow), resized to the model's input
(bilinear) and converted to its channels (RGB for shapes, grey for digits;
an alpha channel is dropped); prints the caption (greedy with --beam=1).
--attention_png: for a soft-attention model, writes the image and, per
generated word, the image overlaid with that step's attention over the CNN
grid. --evaluate: captions every evaluation split greedily and with
config.beam_size beams and writes WORKDIR/captions_SPLIT.json and rows
'SPLIT/DECODER' in metrics.jsonl (what experiments.captioning does after
training). --table: those files' scores as a markdown table, mean ± sd
over replicas. --gallery: the first --count images of --split with the greedy
and beam captions above the first reference (G:, B:, R:). Uses the
best-validation checkpoint when the run kept one.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import jax.numpy as jnp
import numpy as np
from absl import flags

import replicas as replicas_lib
import train
import workdir as workdir_lib
from experiments import cli
from experiments import line_input
from models import seq2seq as s2s
from tasks import captioning


def load(workdir: str, replica: int | None = None):
  """-> (config, task, params, step): the best-validation checkpoint if the
  run kept one, else the latest."""
  best = os.path.isdir(os.path.join(os.path.abspath(workdir), "best_checkpoint"))
  config, task, params, step = train.load_trained(workdir, best=best, replica=replica)
  if config.task != "captioning":
    raise cli.UsageError(f"--workdir: {workdir} holds task {config.task!r}, not "
                         f"captioning")
  return config, task, params, step


def evaluate_and_write(workdir: str, replica: int | None = None) -> dict[str, Any]:
  """Captions and scores every evaluation split; -> {split: report} (for a
  run of K > 1 replicas without `replica`: {'replica_R': {split: report}},
  every replica in turn, files captions_SPLIT_replicaR.json)."""
  count = replicas_lib.count(train.read_run_config(os.path.abspath(workdir)))
  if count > 1 and replica is None:
    reports = {f"replica_{r}": _evaluate_replica(workdir, r, f"_replica{r}")
               for r in range(count)}
  else:
    reports = _evaluate_replica(workdir, replica,
                                "" if replica is None else f"_replica{replica}")
  return reports


def _evaluate_replica(workdir: str, replica: int | None, suffix: str) -> dict[str, Any]:
  config, task, params, step = load(workdir, replica)
  examples = captioning.read_examples(config)
  reports, rows = {}, []
  label = {} if replica is None else {"replica": replica, "seed": config.seed}
  for split, part in examples.items():
    if split == "train":
      continue
    report = captioning.caption_report(config, task.model, params, task.vocab, part)
    reports[split] = report
    workdir_lib.write_json(os.path.join(workdir, f"captions_{split}{suffix}.json"),
                           {"step": step, **report,
                            "references": [list(e.captions) for e in part]})
    for decoder, result in report.items():
      rows.append({"step": step, "split": f"{split}/{decoder}", **label,
                   **result["scores"]})
  _replace_decoded_rows(os.path.join(workdir, "metrics.jsonl"), rows)
  return reports


def _replace_decoded_rows(path: str, rows: list[dict]) -> None:
  """metrics.jsonl without earlier decoded rows ('SPLIT/DECODER') at the
  same step, then `rows`."""
  replaced = {(r["step"], r["split"], r.get("replica")) for r in rows}
  kept = []
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          record = json.loads(line)
        except json.JSONDecodeError:
          continue
        if (record.get("step"), record.get("split"), record.get("replica")) not in replaced:
          kept.append(line.rstrip("\n") + "\n")
  temporary = path + ".tmp"
  with open(temporary, "w") as f:
    f.writelines(kept)
    f.writelines(json.dumps(r) + "\n" for r in rows)
  os.replace(temporary, path)


def format_scores(reports: dict[str, Any]) -> str:
  if all(key.startswith("replica_") for key in reports):
    return "\n".join(f"{key}:\n{format_scores(value)}" for key, value in reports.items())
  lines = ["split decoder BLEU-1 BLEU-4 CIDEr-D exact"]
  for split, report in reports.items():
    for decoder, result in report.items():
      s = result["scores"]
      lines.append(f"{split} {decoder} {s['bleu1']:.2f} {s['bleu4']:.2f} "
                   f"{s['cider_d']:.3f} {s['exact_match']:.3f}")
  return "\n".join(lines)


def score_table(workdir: str) -> str:
  """Markdown: per split and decoder, BLEU-1, BLEU-4, CIDEr-D and exact
  match (%) as mean ± sd over the run's replicas (from the
  captions_SPLIT*.json files that --evaluate writes), then CIDEr-D and
  exact match by number of objects (digits: of digits) for the beam."""
  files: dict[str, list[dict]] = {}
  for name in sorted(os.listdir(workdir)):
    if name.startswith("captions_") and name.endswith(".json"):
      split = name[len("captions_"):-len(".json")].split("_replica")[0]
      with open(os.path.join(workdir, name)) as f:
        files.setdefault(split, []).append(json.load(f))
  if not files:
    raise cli.UsageError(f"--workdir: {workdir} has no captions_SPLIT.json; run "
                         f"--evaluate first")
  lines = ["| split | decoder | seeds | BLEU-1 | BLEU-4 | CIDEr-D | exact match % |",
           "|---|---|---|---|---|---|---|"]
  counts_lines = []
  for split, reports in files.items():
    decoders = [k for k in reports[0] if k not in ("step", "references")]
    for decoder in decoders:
      scores = [r[decoder]["scores"] for r in reports]
      lines.append(f"| {split} | {decoder} | {len(reports)} | "
                   f"{replicas_lib.mean_sd_text([s['bleu1'] for s in scores])} | "
                   f"{replicas_lib.mean_sd_text([s['bleu4'] for s in scores])} | "
                   f"{replicas_lib.mean_sd_text([s['cider_d'] for s in scores])} | "
                   f"{replicas_lib.mean_sd_text([s['exact_match'] for s in scores], scale=100)} |")
    beam = decoders[-1]
    for count in reports[0][beam]["by_objects"]:
      by = [r[beam]["by_objects"][count] for r in reports]
      cider = replicas_lib.mean_sd_text([b["cider_d"] for b in by])
      exact = replicas_lib.mean_sd_text([b["exact_match"] for b in by], scale=100)
      counts_lines.append(f"| {split} | {count} | {cider} | {exact} |")
  return "\n".join([*lines, "", f"By objects (digits), {beam}:", "",
                    "| split | objects | CIDEr-D | exact match % |", "|---|---|---|---|",
                    *counts_lines]) + "\n"


def read_image(path: str, shape: tuple[int, int, int]) -> np.ndarray:
  """A PNG/JPEG -> uint8 [H, W, C] of the model's input shape."""
  from PIL import Image, UnidentifiedImageError  # pylint: disable=g-import-not-at-top
  height, width, channels = shape
  try:
    with Image.open(path) as image:
      image.load()
      if image.width == 0 or image.height == 0:
        raise cli.UsageError(f"--image: {path} is empty ({image.width}x{image.height})")
      bands = len(image.getbands())
      wanted = {1: "L", 3: "RGB"}[channels]
      if image.mode in ("RGBA", "LA"):
        image = image.convert(image.mode[:-1])
        bands -= 1
      elif image.mode == "P":
        image = image.convert("RGB")
        bands = 3
      if bands != channels:
        raise cli.UsageError(f"--image: {path} has {bands} channel(s) "
                             f"({image.mode}); this model reads {channels} "
                             f"({wanted})")
      image = image.convert(wanted).resize((width, height), Image.BILINEAR)
      array = np.asarray(image, np.uint8)
  except FileNotFoundError:
    raise FileNotFoundError(f"--image: {path}: no such file") from None
  except UnidentifiedImageError:
    raise cli.UsageError(f"--image: {path} is not an image Pillow can read "
                         f"(PNG or JPEG)") from None
  return array.reshape(height, width, channels)


def caption_image(config, task, params, image: np.ndarray, beam: int):
  """-> (caption, (the greedy caption's tokens with '</s>', their attention
  [L, N]) or None without attention)."""
  images = jnp.asarray(image[None])
  ids = captioning.decode_images(task.model, params, image[None], beam_size=beam,
                                 max_len=config.max_decode_len,
                                 alpha=config.length_alpha)[0]
  attention = None
  if config.decoder == "soft_attention":
    hyps, weights = s2s.greedy_decode(task.model, params, images, None,
                                      max_len=config.max_decode_len,
                                      return_attention=True)
    length = int(hyps.lengths[0])
    tokens = [task.vocab.tokens[int(i)] for i in np.asarray(hyps.tokens[0, :length])]
    attention = (tokens, np.asarray(weights[0, :length]))
  return task.vocab.decode(ids), attention


def attention_png(image: np.ndarray, words: list[str], attention: np.ndarray,
                  path: str) -> None:
  """The image, then per word the image with that step's attention (the
  grid upsampled to the image) over it."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  height, width = image.shape[:2]
  cells = attention.shape[1]
  ratio = width / height
  grid_h = int(round(math.sqrt(cells / ratio)))
  grid_w = cells // grid_h
  panels = len(words) + 1
  columns = min(panels, 6)
  rows = -(-panels // columns)
  figure = Figure(figsize=(2.2 * columns * max(ratio, 1) / 1.0, 2.4 * rows))
  shown = image[..., 0] if image.shape[-1] == 1 else image
  cmap = "gray" if image.shape[-1] == 1 else None
  for k in range(panels):
    axes = figure.add_subplot(rows, columns, k + 1)
    axes.imshow(shown, cmap=cmap)
    if k:
      weights = attention[k - 1].reshape(grid_h, grid_w)
      axes.imshow(weights, cmap="viridis", alpha=0.6, interpolation="bilinear",
                  extent=(-0.5, width - 0.5, height - 0.5, -0.5))
      axes.set_title(words[k - 1])
    else:
      axes.set_title("input")
    axes.axis("off")
  figure.tight_layout()
  figure.savefig(path, dpi=100)


def gallery(workdir: str, path: str, *, split: str = "test", count: int = 8,
            replica: int | None = None) -> None:
  """A PNG grid of `count` images of `split` with their greedy and beam
  captions and first reference."""
  config, task, params, _ = load(workdir, replica)
  examples = captioning.read_examples(config)
  if split not in examples or split == "train":
    raise cli.UsageError(f"--split: expected one of "
                         f"{[s for s in examples if s != 'train']}, got {split!r}")
  chosen = examples[split][:count]
  images = captioning.stack_images(chosen, config.image_size)
  texts = []
  decoded = {beam: captioning.decode_images(
      task.model, params, images, beam_size=beam, max_len=config.max_decode_len,
      alpha=config.length_alpha) for beam in (1, config.beam_size)}
  for k, example in enumerate(chosen):
    texts.append([f"G: {task.vocab.decode(decoded[1][k])}",
                  f"B: {task.vocab.decode(decoded[config.beam_size][k])}",
                  f"R: {example.captions[0]}"])
  captioning.caption_data.save_grid(chosen, path, texts)


def _run(f: flags.FlagValues) -> None:
  cli.check_workdir_flag(f.workdir)
  if f.table:
    print(score_table(f.workdir), end="")
    return
  if f.gallery:
    if f.count < 1:
      raise cli.UsageError(f"--count: expected a positive integer, got {f.count}")
    gallery(f.workdir, f.gallery, split=f.split, count=f.count, replica=f.replica)
    return
  if f.evaluate:
    print(format_scores(evaluate_and_write(f.workdir, f.replica)))
    return
  if not f.image:
    raise cli.UsageError("--image: give an image to caption (or --evaluate)")
  if f.beam < 1:
    raise cli.UsageError(f"--beam: expected a positive integer, got {f.beam}")
  if f.attention_png and not os.path.isdir(os.path.dirname(os.path.abspath(
      f.attention_png))):
    raise cli.UsageError(f"--attention_png: the folder of {f.attention_png} does "
                         f"not exist")
  config, task, params, _ = load(f.workdir, f.replica)
  shape = tuple(task.first_batch()["inputs"].shape[1:])
  image = read_image(f.image, shape)
  text, attention = caption_image(config, task, params, image, f.beam)
  print(text)
  if f.attention_png:
    if attention is None:
      raise cli.UsageError("--attention_png: this model has no attention "
                           f"(decoder {config.decoder!r})")
    attention_png(image, *attention, f.attention_png)


def main():
  flags.DEFINE_string("workdir", None, "A captioning training workdir.", required=True)
  flags.DEFINE_string("image", "", "A PNG or JPEG to caption.")
  flags.DEFINE_integer("beam", 5, "Beam size (1: greedy).")
  flags.DEFINE_string("attention_png", "", "Write the attention maps here.")
  flags.DEFINE_bool("evaluate", False, "Caption and score every evaluation split.")
  flags.DEFINE_bool("table", False, "Print the scores of --evaluate's files as a "
                    "markdown table, mean ± sd over replicas.")
  flags.DEFINE_string("gallery", "", "Write a PNG grid of captioned --split images.")
  flags.DEFINE_string("split", "test", "The split of --gallery.")
  flags.DEFINE_integer("count", 8, "Images in --gallery.")
  flags.DEFINE_integer("replica", None, "Which replica of a run of "
                       "num_replicas > 1 (required there).")
  line_input.run_tool(_run)


if __name__ == "__main__":
  main()
