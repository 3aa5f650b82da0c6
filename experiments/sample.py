"""Generates text from a trained language model's latest checkpoint.

  python -m experiments.sample --workdir=workdirs/ptb_small \
      [--length=100] [--temperature=1.0] [--prompt="the company said"] [--seed=0]
  printf 'the company\nshares of\n' | python -m experiments.sample \
      --workdir=workdirs/ptb_small --prompt=-

Reads WORKDIR/config.json, rebuilds the task (and so its vocabulary) from
it, restores the params of the latest (or --step) checkpoint and continues
the prompt (default: the start of a sentence) with --length sampled tokens.
Temperature 0 picks the most likely token each time. Words are printed
separated by spaces, characters joined; '<eos>' becomes a line break.

Words of the prompt that are not in the vocabulary are read as '<unk>'
(characters: dropped), bytes that are not UTF-8 as U+FFFD, and a prompt over
MAX_PROMPT_TOKENS is cut to its last ones, each with a note on stderr.
--prompt=- reads one prompt per stdin line (experiments/line_input.py) and
prints one continuation per line, '<eos>' kept as a token; notes are
"line N: ...", and a line over line_input.MAX_LINE_BYTES gives an empty line.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from absl import flags

import corpora
import input_pipeline
import train
from experiments import cli
from experiments import line_input
from models import language_model
from tasks import ptb as ptb_task

MAX_PROMPT_TOKENS = 1000   # longer prompts keep their last tokens
STDIN = "-"


class Loaded(NamedTuple):
  config: Any
  task: ptb_task.LanguageModelTask
  params: Any
  step: int


class Prompt(NamedTuple):
  """A prompt as ids, and a note when they differ from its text ('' if not).
  new_sentence: the ids are the default start ('<eos>'), not shown."""
  ids: list[int]
  note: str = ""
  new_sentence: bool = False


def load(workdir: str, step: int | None = None,
         replica: int | None = None) -> Loaded:
  """-> Loaded(config, task, params, step) from a workdir written by train.py
  (`replica`: which one of a run of num_replicas > 1)."""
  config, task, params, step = train.load_trained(workdir, step, replica=replica)
  if not isinstance(task, ptb_task.LanguageModelTask):
    raise ValueError(f"workdir: {workdir} holds task {config.task!r}, not a "
                     f"language model")
  return Loaded(config, task, params, step)


def _char_tokens(config) -> bool:
  return config.level == "char"


def _tokens(prompt: str, config) -> list[str]:
  if not _char_tokens(config):
    return prompt.split()
  if corpora.is_offline(config.dataset):
    return list(prompt.strip().replace(" ", corpora.lines.WORD_SEPARATOR))
  return list(prompt)


def prompt_ids(prompt: str, config, vocab: input_pipeline.Vocabulary) -> Prompt:
  """Prompt text -> ids, tokenized as the training data was; '' (or nothing
  the vocabulary knows) -> ['<eos>']. Unknown tokens become '<unk>' where the
  vocabulary has it and are dropped otherwise; over MAX_PROMPT_TOKENS, the
  last ones are kept. The note says what changed."""
  tokens = _tokens(prompt, config)
  unknown = sorted({t for t in tokens if t not in vocab})
  notes = []
  if unknown:
    if input_pipeline.UNK in vocab:
      notes.append(f"not in the vocabulary, read as {input_pipeline.UNK}: {unknown}")
    else:
      tokens = [t for t in tokens if t in vocab]
      notes.append(f"not in the vocabulary, dropped: {unknown}")
  if len(tokens) > MAX_PROMPT_TOKENS:
    notes.append(f"prompt cut from {len(tokens)} to its last "
                 f"{MAX_PROMPT_TOKENS} tokens")
    tokens = tokens[-MAX_PROMPT_TOKENS:]
  new_sentence = not tokens
  if new_sentence:
    if prompt.strip():
      notes.append("nothing left of the prompt: starting a new sentence")
    tokens = [input_pipeline.EOS]
  return Prompt([int(i) for i in vocab.encode(tokens)], "; ".join(notes),
                new_sentence)


def encode_prompt(prompt: str, config, vocab: input_pipeline.Vocabulary) -> list[int]:
  """Prompt text -> ids (`prompt_ids` without its note)."""
  return prompt_ids(prompt, config, vocab).ids


def decode(tokens: list[str], config, *, one_line: bool = False) -> str:
  """Tokens -> readable text: '<eos>' ends a line (one_line: stays a token)."""
  eos = input_pipeline.EOS
  if not _char_tokens(config):
    text = " ".join(tokens)
    return text if one_line else text.replace(f" {eos} ", "\n").replace(eos, "\n")
  text = "".join(t if one_line or t != eos else "\n" for t in tokens)
  if corpora.is_offline(config.dataset):
    text = text.replace(corpora.lines.WORD_SEPARATOR, " ")
  return text


def continue_prompt(loaded: Loaded, prompt: str, *, length: int = 100,
                    temperature: float = 1.0, seed: int = 0,
                    one_line: bool = False) -> tuple[str, str]:
  """-> (the prompt followed by `length` sampled tokens, as text; the
  prompt's note, '' when it was read as is)."""
  vocab = loaded.task.vocabulary
  encoded = prompt_ids(prompt, loaded.config, vocab)
  ids = language_model.sample(loaded.task.model, loaded.params,
                              jnp.asarray(encoded.ids), length,
                              jax.random.PRNGKey(seed), temperature)
  shown = [] if encoded.new_sentence else vocab.decode(encoded.ids)
  text = decode(shown + vocab.decode(jax.device_get(ids)), loaded.config,
                one_line=one_line)
  return text, encoded.note


def generate(workdir: str, *, length: int = 100, temperature: float = 1.0,
             prompt: str = "", seed: int = 0, step: int | None = None) -> str:
  """The prompt followed by `length` sampled tokens, as text."""
  text, _ = continue_prompt(load(workdir, step), prompt, length=length,
                            temperature=temperature, seed=seed)
  return text


def argument_text(text: str) -> line_input.Line:
  """A command-line argument as text: bytes that were not UTF-8 (kept by
  Python as surrogates) become U+FFFD, with a note."""
  try:
    text.encode("utf-8")
    return line_input.Line(0, text)
  except UnicodeEncodeError:
    return line_input.decode_line(0, os.fsencode(text))


def sample_input(loaded: Loaded, lines, **options) -> None:
  """One continuation per line ('' for a skipped line); notes on stderr."""
  for line in lines:
    text, note = "", ""
    if not line.skipped:
      text, note = continue_prompt(loaded, line.text, one_line=True, **options)
    line_input.print_note(line.number, line_input.join_notes(line.note, note))
    print(text, flush=True)


def _run(f: flags.FlagValues) -> None:
  cli.check_workdir_flag(f.workdir)
  if f.length < 1:
    raise cli.UsageError(f"--length: expected a positive integer, got {f.length}")
  if not f.temperature >= 0:
    raise cli.UsageError(f"--temperature: expected a value >= 0, got {f.temperature}")
  loaded = load(f.workdir, f.step, f.replica)
  options = dict(length=f.length, temperature=f.temperature, seed=f.seed)
  if f.prompt == STDIN:
    sample_input(loaded, line_input.read_lines(), **options)
    return
  prompt = argument_text(f.prompt)
  text, note = continue_prompt(loaded, prompt.text, **options)
  note = line_input.join_notes(prompt.note, note)
  if note:
    print(f"prompt: {note}", file=sys.stderr, flush=True)
  print(text)


def main():
  flags.DEFINE_string("workdir", None, "A training workdir.", required=True)
  flags.DEFINE_integer("length", 100, "Tokens to sample.")
  flags.DEFINE_float("temperature", 1.0, "Softmax temperature; 0 = greedy.")
  flags.DEFINE_string("prompt", "", "Text to continue (default: a new "
                      "sentence); '-': one prompt per stdin line.")
  flags.DEFINE_integer("seed", 0, "Sampling seed.")
  flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
  flags.DEFINE_integer("replica", None, "Which replica of a run of "
                       "num_replicas > 1 (required there).")
  line_input.run_tool(_run)


if __name__ == "__main__":
  main()
