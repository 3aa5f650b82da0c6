"""Generates text from a trained language model's latest checkpoint.

  python -m experiments.sample --workdir=workdirs/ptb_small \
      [--length=100] [--temperature=1.0] [--prompt="the company said"] [--seed=0]

Reads WORKDIR/config.json, rebuilds the task (and so its vocabulary) from
it, restores the params of the latest (or --step) checkpoint and continues
the prompt (default: the start of a sentence) with --length sampled tokens.
Temperature 0 picks the most likely token each time. Words are printed
separated by spaces, characters joined; '<eos>' becomes a line break.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
from absl import app, flags, logging

import corpora
import input_pipeline
import train
from experiments import launch
from models import language_model
from tasks import ptb as ptb_task


def load(workdir: str, step: int | None = None):
  """-> (config, task, params, step) from a workdir written by train.py."""
  config, task, params, step = train.load_trained(workdir, step)
  if not isinstance(task, ptb_task.LanguageModelTask):
    raise ValueError(f"workdir: {workdir} holds task {config.task!r}, not a "
                     f"language model")
  return config, task, params, step


def _char_tokens(config) -> bool:
  return config.level == "char"


def encode_prompt(prompt: str, config, vocab: input_pipeline.Vocabulary) -> list[int]:
  """Prompt text -> ids, tokenized as the training data was; '' -> ['<eos>']."""
  if not prompt:
    return [vocab.id_of(input_pipeline.EOS)]
  if not _char_tokens(config):
    tokens = prompt.split()
  elif corpora.is_offline(config.dataset):
    tokens = list(prompt.strip().replace(" ", corpora.lines.WORD_SEPARATOR))
  else:
    tokens = list(prompt)
  return [int(i) for i in vocab.encode(tokens)]


def decode(tokens: list[str], config) -> str:
  """Tokens -> readable text: '<eos>' ends a line."""
  if not _char_tokens(config):
    return " ".join(tokens).replace(f" {input_pipeline.EOS} ", "\n").replace(
        input_pipeline.EOS, "\n")
  text = "".join("\n" if t == input_pipeline.EOS else t for t in tokens)
  if corpora.is_offline(config.dataset):
    text = text.replace(corpora.lines.WORD_SEPARATOR, " ")
  return text


def generate(workdir: str, *, length: int = 100, temperature: float = 1.0,
             prompt: str = "", seed: int = 0, step: int | None = None) -> str:
  """The prompt followed by `length` sampled tokens, as text."""
  config, task, params, _ = load(workdir, step)
  vocab = task.vocabulary
  prompt_ids = encode_prompt(prompt, config, vocab)
  ids = language_model.sample(task.model, params, jnp.asarray(prompt_ids),
                              length, jax.random.PRNGKey(seed), temperature)
  shown = vocab.decode(prompt_ids) if prompt else []
  return decode(shown + vocab.decode(jax.device_get(ids)), config)


def main():
  flags.DEFINE_string("workdir", None, "A training workdir.", required=True)
  flags.DEFINE_integer("length", 100, "Tokens to sample.")
  flags.DEFINE_float("temperature", 1.0, "Softmax temperature; 0 = greedy.")
  flags.DEFINE_string("prompt", "", "Text to continue (default: a new sentence).")
  flags.DEFINE_integer("seed", 0, "Sampling seed.")
  flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")

  def run(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:  # orbax warns on read-only opens
      logging.set_verbosity(logging.ERROR)
    f = flags.FLAGS
    with launch.user_errors_exit():
      print(generate(f.workdir, length=f.length, temperature=f.temperature,
                     prompt=f.prompt, seed=f.seed, step=f.step))

  app.run(run)


if __name__ == "__main__":
  main()
