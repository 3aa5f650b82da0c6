"""Text corpora through TFDS without TensorFlow: build once, read as ArrayRecord.

  texts = corpora.read_texts("ptb/word", "train")   # list of lines, in order

Offline corpora (builders in this package, subclasses of `LineCorpus`) are
built on first use from data that ships in a Python package, into
`<data_dir>/<name>/<config>/<version>/`, and reused afterwards. Every read of
such a corpus checks the records against the line count and sha256 stored at
build time; a missing, incomplete or corrupt directory is rebuilt once, and
if that does not help, a `CorpusError` says where and why. Any other name is
passed to `tfds.data_source` (standard TFDS datasets such as
'tiny_shakespeare' or 'lm1b', where the machine can download and prepare
them in ArrayRecord format).

data_dir: the argument, else $RNN_DATA_DIR, else ~/.cache/rnn_jax/tfds.
"""

from __future__ import annotations

import difflib
import os
from typing import Sequence

from corpora import lines
from corpora import store
from corpora import ptb  # noqa: F401  (registers the 'ptb' builder)
from corpora.lines import LineCorpus, format_line, fingerprint  # noqa: F401
from corpora.store import CorpusError, read_records  # noqa: F401

ENV_DATA_DIR = "RNN_DATA_DIR"
DEFAULT_DATA_DIR = os.path.join("~", ".cache", "rnn_jax", "tfds")

def resolve_data_dir(data_dir: str | None = None) -> str:
  """data_dir, else $RNN_DATA_DIR, else ~/.cache/rnn_jax/tfds (expanded)."""
  chosen = data_dir or os.environ.get(ENV_DATA_DIR) or DEFAULT_DATA_DIR
  return os.path.abspath(os.path.expanduser(chosen))


def known_corpora() -> list[str]:
  """The offline corpora, as 'name/config'."""
  return sorted(f"{name}/{config.name}"
                for name, cls in LineCorpus.registry.items()
                for config in cls.BUILDER_CONFIGS)


def is_offline(name: str) -> bool:
  """True if `name` ('ptb' or 'ptb/word') is one of this package's builders."""
  return name.split("/")[0] in LineCorpus.registry


def _tfds():
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds


def _check_known(name: str) -> None:
  """Raises ValueError listing the known names if TFDS has no `name` either."""
  tfds = _tfds()
  base = name.split("/")[0]
  try:
    tfds.builder_cls(base)
    return
  except tfds.core.registered.DatasetNotFoundError:
    pass
  try:  # older-style TFDS datasets register only when their module is imported
    import tensorflow_datasets.text  # noqa: F401  pylint: disable=g-import-not-at-top
    import tensorflow_datasets.translate  # noqa: F401  pylint: disable=g-import-not-at-top
    tfds.builder_cls(base)
    return
  except Exception:  # pylint: disable=broad-except
    pass
  catalog = tfds.list_builders(with_community_datasets=False)
  close = difflib.get_close_matches(base, catalog + sorted(LineCorpus.registry), n=3)
  raise ValueError(
      f"dataset: unknown dataset {name!r}; known offline corpora are "
      f"{known_corpora()}; any TFDS catalog name also works where it can be "
      f"downloaded" + (f" (closest: {close})" if close else ""))


# ----------------------------------------------------------------------------
# Offline corpora: build, verify, rebuild.

def _split_config(name: str, cls) -> tuple[str, str]:
  return name.partition("/")[0], store.config_of(name, cls)


def _version_dir(data_dir: str, cls, config: str) -> str:
  return os.path.join(data_dir, cls.name, config, str(cls.VERSION))


def _read_verified(builder, split: str) -> list[str]:
  """The split's lines; CorpusError unless they are exactly what was written."""
  expected = builder.info.metadata.get(split) if builder.info.metadata else None
  if not expected:
    raise CorpusError(f"no fingerprint for split {split!r} in the metadata")
  source = builder.as_data_source(split=split)
  records = read_records(source)
  indices = [record["index"] for record in records]
  texts = [store.text(record["text"]) for record in records]
  if len(texts) != expected["num_lines"]:
    raise CorpusError(f"{len(texts)} records, expected {expected['num_lines']}")
  if any(int(i) != k for k, i in enumerate(indices)):
    raise CorpusError("records are out of order")
  if fingerprint(texts) != expected["sha256"]:
    raise CorpusError("the text read back differs from the text written (sha256)")
  return texts


def _read_offline(name: str, split: str, data_dir: str) -> list[str]:
  cls = LineCorpus.registry[name.split("/")[0]]
  base, config = _split_config(name, cls)
  if split not in cls.SPLITS:
    raise ValueError(f"split: {base}/{config} has no split {split!r}; known "
                     f"splits are {list(cls.SPLITS)} (whole splits only)")

  def read(builder):
    if split not in builder.info.splits.keys():
      raise CorpusError(f"split {split!r} missing from the built files")
    return _read_verified(builder, split)
  return store.read_built(
      lambda: cls(data_dir=data_dir, config=config, file_format="array_record"),
      read, name=f"{base}/{config}", path=_version_dir(data_dir, cls, config))


# ----------------------------------------------------------------------------
# The public readers.

def read_texts(name: str, split: str, *, data_dir: str | None = None,
               text_feature: str = "text") -> list[str]:
  """All records of `split` as text, in the dataset's order.

  Args:
    name: 'ptb/word', 'ptb/char' (offline, built on first use), or a TFDS
      name such as 'tiny_shakespeare'.
    split: a TFDS split ('train', 'validation', 'test', 'train[:10%]').
    data_dir: see the module docstring.
    text_feature: the feature holding the text (TFDS datasets only).
  """
  if not name:
    raise ValueError(f"dataset: expected a dataset name, got {name!r}")
  data_dir = resolve_data_dir(data_dir)
  if is_offline(name):
    return _read_offline(name, split, data_dir)
  _check_known(name)
  source = _tfds().data_source(name, split=split, data_dir=data_dir)
  try:
    return [store.text(record[text_feature]) for record in read_records(source)]
  except KeyError:
    raise ValueError(f"text_feature: dataset {name!r} has no feature "
                     f"{text_feature!r}") from None


__all__: Sequence[str] = (
    "CorpusError", "LineCorpus", "known_corpora", "is_offline",
    "read_texts", "resolve_data_dir", "lines", "ptb")
