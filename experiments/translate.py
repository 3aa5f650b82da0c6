"""Translates stdin lines with a trained seq2seq checkpoint, or scores it.

  echo "Open the file" | python -m experiments.translate --workdir=workdirs/nmt_attention
  python -m experiments.translate --workdir=workdirs/addition3 --beam_size=1 <<< "123+45"
  python -m experiments.translate --workdir=workdirs/nmt_attention --evaluate [--split=test]

Reads WORKDIR/config.json, rebuilds the model and its vocabularies (nmt:
WORKDIR/subwords.model, written by training), restores the latest
(or --step) checkpoint (its moving average when the run kept one) and
decodes each input line with beam search (--beam_size, default the config's;
1 = greedy). A missing or damaged WORKDIR/subwords.model is an error naming
it. One output line per input line, always (stdin is read as bytes,
experiments/line_input.py): an empty input, or one over
line_input.MAX_LINE_BYTES bytes, gives an empty line; bytes that are not
UTF-8 (read as U+FFFD), unknown characters, over-long inputs (cut to
config.max_tokens, or the toy task's source length) and outputs cut at the
maximum length are reported on stderr as "line N: ...". --evaluate decodes a
split greedily and with the beam instead and writes
WORKDIR/bleu_<split>.json plus the hypotheses (nmt only).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
from typing import Any, Iterable

import jax
import jax.numpy as jnp
from absl import flags

import replicas
import tasks as tasks_lib
import train
from corpora import gettext_parallel
from experiments import cli
from experiments import line_input
from tasks import decoding
from tasks import nmt as nmt_task
from tasks import seq2seq as seq2seq_task

SEQ2SEQ_TASKS = ("nmt", "addition", "reversal")


@dataclasses.dataclass
class Loaded:
  config: Any
  model: Any
  params: Any
  source_vocab: Any
  target_vocab: Any
  step: int


def _max_source_tokens(config) -> int:
  if config.task == "nmt":
    return config.max_tokens
  if config.task == "addition":
    return 2 * config.num_digits + 1
  return config.max_len


def load(workdir: str, step: int | None = None,
         replica: int | None = None) -> Loaded:
  """Config, model, params and vocabularies from a training workdir
  (`replica`: which one of a run of num_replicas > 1)."""
  run_config = train.read_run_config(workdir)
  config = train.replica_config_of(workdir, run_config, replica)
  if config.task not in SEQ2SEQ_TASKS:
    raise ValueError(f"workdir: {workdir} holds task {config.task!r}, not one "
                     f"of the seq2seq tasks {SEQ2SEQ_TASKS}")
  module = importlib.import_module(tasks_lib._TASKS[config.task])  # pylint: disable=protected-access
  try:
    source_vocab, target_vocab = module.vocabularies(config, workdir)
  except nmt_task.DamagedVocabularyError as e:
    raise cli.CorruptFileError(str(e)) from None
  model = seq2seq_task.build_model(config, source_vocab.size, target_vocab.size)
  dummy = seq2seq_task.make_batch([[3]], [[3]], 1, 2)
  params = seq2seq_task._init_params(  # pylint: disable=protected-access
      model, jax.random.PRNGKey(0), dummy["inputs"], dummy["lengths"],
      dummy["decoder_inputs"])
  tx = train.make_optimizer(config)
  like = train.TrainState(
      step=jnp.asarray(0, jnp.int32), params=params, opt_state=tx.init(params),
      rng=jax.random.PRNGKey(0),
      ema_params=params if config.get("ema_decay", 0.0) > 0 else ())
  params, step = train.restore_replica_params(
      workdir, like, replicas.count(run_config), step, replica=replica)
  return Loaded(config, model, params, source_vocab, target_vocab, step)


def _keeps_placeholders(config) -> bool:
  """Trained on a corpus whose placeholders are numbered tokens <1>, <2>."""
  return config.task == "nmt" and config.dataset.endswith("_keep_placeholders")


def translate_lines(loaded: Loaded, lines, *, beam_size: int | None = None,
                    batch_size: int = 64) -> list[decoding.Translation]:
  """With a *_keep_placeholders model, placeholders (%s, %1$s, {name}, $X)
  go in as the tokens it was trained on and come back as themselves."""
  config = loaded.config
  lines = [line.rstrip("\n") for line in lines]
  originals = [{} for _ in lines]
  if _keeps_placeholders(config):
    prepared = [gettext_parallel.placeholders_to_tokens(line) for line in lines]
    lines = [text for text, _ in prepared]
    originals = [numbers for _, numbers in prepared]
  results = decoding.translate_texts(
      loaded.model, loaded.params, loaded.source_vocab, loaded.target_vocab,
      lines, beam_size=beam_size or config.beam_size,
      max_source_tokens=_max_source_tokens(config),
      max_decode_len=config.max_decode_len, alpha=config.length_alpha,
      batch_size=batch_size)
  return [_restore_placeholders(r, numbers) if numbers else r
          for r, numbers in zip(results, originals)]


def _restore_placeholders(result: decoding.Translation,
                          originals: dict[int, str]) -> decoding.Translation:
  missing = [originals[k] for k in sorted(originals) if f"<{k}>" not in result.text]
  note = result.note
  if missing:
    note += ("; " if note else "") + ("placeholders missing from the "
                                      f"translation: {' '.join(missing)}")
  escape = any(p.startswith("%") for p in originals.values())
  return dataclasses.replace(
      result, note=note,
      text=gettext_parallel.tokens_to_placeholders(result.text, originals, escape))


def evaluate_and_write(workdir: str, split: str = "test",
                       step: int | None = None, replica: int | None = None) -> dict:
  """BLEU of greedy and beam decoding on a split -> WORKDIR/bleu_<split>.json
  (bleu_<split>_replica<R>.json for a replica of a replicated run)."""
  from tasks import nmt  # pylint: disable=g-import-not-at-top
  loaded = load(workdir, step, replica)
  suffix = "" if replica is None else f"_replica{replica}"
  if loaded.config.task != "nmt":
    raise ValueError(f"--evaluate: BLEU is for the nmt task, {workdir} holds "
                     f"{loaded.config.task!r}")
  key = {"test": "test_split", "valid": "valid_split",
         "validation": "valid_split"}.get(split)
  if key is None:
    raise ValueError(f"split: expected 'test' or 'valid', got {split!r}")
  beams = sorted({1, int(loaded.config.beam_size)})
  report = nmt.bleu_report(loaded.config, loaded.model, loaded.params,
                           loaded.source_vocab,
                           split_key=key, beam_sizes=beams,
                           max_sentences=loaded.config.get("bleu_max_sentences", 0))
  report["step"] = loaded.step
  report["workdir"] = os.path.abspath(workdir)
  for name, decode in report["decodes"].items():
    with open(os.path.join(workdir, f"hypotheses_{split}_{name}{suffix}.txt"),
              "w") as f:
      f.write("\n".join(decode.pop("hypotheses")) + "\n")
  with open(os.path.join(workdir, f"bleu_{split}{suffix}.json"), "w") as f:
    json.dump(report, f, indent=2)
  return report


def format_report(report: dict) -> str:
  lines = [f"{report['split']} ({report['sentences']} sentences, step "
           f"{report.get('step')}):"]
  for name, decode in report["decodes"].items():
    by_length = ", ".join(f"{r['words']}w:{r['bleu']:.1f}" for r in decode["by_length"])
    lines.append(f"  {name}: BLEU {decode['bleu']:.2f} chrF {decode['chrf']:.2f} "
                 f"({decode['decode_seconds']} s) | by source words: {by_length}")
  return "\n".join(lines)


def translate_input(loaded: Loaded, lines: Iterable[line_input.Line], *,
                    beam_size: int | None = None) -> None:
  """Prints one translation per line (an empty one for a skipped line) and
  each line's notes on stderr as 'line N: ...'."""
  lines = list(lines)
  used = [line for line in lines if not line.skipped]
  results = iter(translate_lines(loaded, [line.text for line in used],
                                 beam_size=beam_size))
  for line in lines:
    result = (decoding.Translation("", [], 0.0, 0.0) if line.skipped
              else next(results))
    line_input.print_note(line.number, line_input.join_notes(line.note,
                                                             result.note))
    print(result.text, flush=True)


def _run(f: flags.FlagValues) -> None:
  cli.check_workdir_flag(f.workdir)
  if f.evaluate:
    print(format_report(evaluate_and_write(f.workdir, f.split, f.step,
                                           f.replica)))
    return
  if f.beam_size is not None and f.beam_size < 1:
    raise cli.UsageError(f"--beam_size: expected a positive integer, got "
                         f"{f.beam_size}")
  translate_input(load(f.workdir, f.step, f.replica), line_input.read_lines(),
                  beam_size=f.beam_size)


def main():
  flags.DEFINE_string("workdir", None, "A seq2seq training workdir.", required=True)
  flags.DEFINE_integer("beam_size", None, "Beam width (default: the config's; "
                       "1 = greedy).")
  flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
  flags.DEFINE_integer("replica", None, "Which replica of a run of "
                       "num_replicas > 1 (required there).")
  flags.DEFINE_bool("evaluate", False, "Score a split with BLEU instead of "
                    "translating stdin (nmt only).")
  flags.DEFINE_string("split", "test", "With --evaluate: 'test' or 'valid'.")
  line_input.run_tool(_run)


if __name__ == "__main__":
  main()
