"""Offline corpora on disk: build once as ArrayRecord, read back verified.

Every offline builder stores a fingerprint of what it wrote; a reader checks
the records against it, and a missing, incomplete or damaged directory is
rebuilt once before a `CorpusError` says where and why.
"""

from __future__ import annotations

import errno
import hashlib
import shutil
import sys
from typing import Any, Callable, Iterable, NamedTuple, TypeVar

from absl import logging

_READ_CHUNK = 8192  # records per data-source read
T = TypeVar("T")


class CorpusError(ValueError):
  """A corpus cannot be built or read back correctly."""


class NoSourceData(ValueError):
  """The files a corpus is built from are missing: rebuilding cannot help."""


def read_source(corpus: str, read: Callable[[], T]) -> T:
  """read(), with a missing or unreadable source file (OSError, ValueError)
  turned into NoSourceData naming the corpus: rebuilding cannot help."""
  try:
    return read()
  except (OSError, ValueError) as e:
    raise NoSourceData(f"{corpus}: {e}") from e


def text(value) -> str:
  """A record's string feature (bytes in ArrayRecord) as str."""
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def sha256_lines(lines: Iterable[str]) -> str:
  """sha256 of the lines, each followed by a newline (the stored fingerprint)."""
  digest = hashlib.sha256()
  for line in lines:
    digest.update(f"{line}\n".encode("utf-8"))
  return digest.hexdigest()


def read_records(source) -> list[Any]:
  """Every record of a data source, in order, read in chunks (much faster
  than one by one)."""
  records = []
  batched = hasattr(source, "__getitems__")
  for start in range(0, len(source), _READ_CHUNK):
    indices = list(range(start, min(start + _READ_CHUNK, len(source))))
    if batched:
      try:
        records.extend(source.__getitems__(indices))
        continue
      except TypeError:  # tfds.testing.mock_data's sources lack it
        batched = False
    records.extend(source[i] for i in indices)
  return records


def check_in_order(records) -> None:
  """CorpusError unless the records' 'index' features run 0, 1, 2, ..."""
  if [int(r["index"]) for r in records] != list(range(len(records))):
    raise CorpusError("records are missing or out of order")


def config_of(name: str, builder_cls) -> str:
  """'base[/CONFIG]' -> CONFIG, one of builder_cls's (the first by default)."""
  base, _, config = name.partition("/")
  configs = [c.name for c in builder_cls.BUILDER_CONFIGS]
  config = config or configs[0]
  if config not in configs:
    raise ValueError(f"dataset: {base!r} has no config {config!r}; known are "
                     f"{[f'{base}/{c}' for c in configs]}")
  return config


def indexed_info(builder, features: dict):
  """The DatasetInfo of an offline builder: `features` plus 'index' (each
  record's position, checked on read), unshuffled, with an empty metadata dict
  for the fingerprints; the description is the module docstring's first line."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  doc = sys.modules[type(builder).__module__].__doc__ or ""
  return tfds.core.DatasetInfo(
      builder=builder, description=doc.strip().splitlines()[0] if doc.strip() else "",
      features=tfds.features.FeaturesDict({
          **features, "index": tfds.features.Scalar(dtype=np.int32)}),
      disable_shuffling=True, metadata=tfds.core.MetadataDict())


class StoredSplit(NamedTuple):
  """A split's records, in order, and the fingerprint stored at build time."""
  records: list[Any]
  expected: dict


def stored_split(builder, split: str, split_rule: str | None = None) -> StoredSplit:
  """The records of `split` and its stored fingerprint; CorpusError if the
  corpus was built under another split rule, has no fingerprint for the split,
  or its records are missing or out of order."""
  metadata = builder.info.metadata or {}
  if split_rule is not None and metadata.get("split_rule") != split_rule:
    raise CorpusError(f"built with split rule {metadata.get('split_rule')!r}, "
                      f"expected {split_rule!r}")
  expected = metadata.get(split)
  if not expected:
    raise CorpusError(f"no fingerprint for split {split!r}")
  records = read_records(builder.as_data_source(split=split))
  check_in_order(records)
  return StoredSplit(records, expected)


def prepare(builder) -> None:
  """Builds `builder` as ArrayRecord without TFDS's progress bars."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  shown = getattr(tfds.core.utils.tqdm_utils, "_active", True)
  tfds.display_progress_bar(False)
  try:
    builder.download_and_prepare(file_format="array_record")
  finally:
    tfds.display_progress_bar(shown)


# OSErrors about the data directory itself (read-only, no permission, full):
# reported as they are, with the path, rather than as a damaged corpus.
_NOT_DAMAGE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS,
                                errno.ENOSPC, errno.EDQUOT})


def _not_damage(error: OSError) -> bool:
  return isinstance(error, PermissionError) or error.errno in _NOT_DAMAGE_ERRNOS


def read_built(make_builder: Callable[[], Any], read: Callable[[Any], T], *,
               name: str, path: str) -> T:
  """read(builder) of the corpus `name` stored in `path`, built on first use.

  make_builder() -> a TFDS builder whose data_dir is `path`; read(builder)
  returns the verified contents or raises CorpusError. A failure other than
  NoSourceData, ImportError or a file-system error about the directory itself
  (permission, read-only, disk full: raised as it is) deletes `path` and
  builds once more.
  """
  problem: Exception | None = None
  for attempt in (1, 2):
    try:
      builder = make_builder()
      if not builder.is_prepared():
        prepare(builder)
      return read(builder)
    except (ImportError, NoSourceData):
      raise
    except OSError as e:
      if _not_damage(e):  # the disk, not the corpus: rebuilding cannot help
        raise
      problem = e
    except Exception as e:  # pylint: disable=broad-except  (damaged files)
      problem = e
    if attempt == 1:
      logging.warning("Corpus %s in %s is damaged (%s: %s); rebuilding it.",
                      name, path, type(problem).__name__, problem)
      shutil.rmtree(path, ignore_errors=True)
  raise CorpusError(
      f"dataset {name}: the files in {path} cannot be read back correctly even "
      f"after a rebuild ({type(problem).__name__}: {problem}). Check the disk "
      f"and the data_dir setting.")
