"""A small labelled image set in one file: the ``--data FILE`` form of ``mpcert certify``.

Accepted files (nothing else is executed or unpickled):

* ``*.npz`` (``numpy.savez``) with arrays ``images`` and ``labels``;
* ``*.pt`` / ``*.pth`` holding a dict ``{"images": tensor, "labels": tensor}``, read with
  ``torch.load(weights_only=True)``.

``images`` must be a finite floating ``(N, C, H, W)`` array with ``N >= 1`` (already normalised the
way the model expects), ``labels`` an integer ``(N,)`` array.  Images are returned as float64 and
labels as int64 tensors, in file order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from verification.models.datasets import DatasetError

__all__ = ["SAMPLE_FILE_SUFFIXES", "SampleFile", "load_sample_file", "is_sample_file"]

SAMPLE_FILE_SUFFIXES = (".npz", ".pt", ".pth")


@dataclass(frozen=True, eq=False)
class SampleFile:
    """Images ``(N, C, H, W)`` float64 and labels ``(N,)`` int64 read from ``path``."""

    path: str
    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def is_sample_file(data: str) -> bool:
    """Whether the ``--data`` value names a sample file (by its suffix) rather than a dataset folder."""
    return Path(data).suffix in SAMPLE_FILE_SUFFIXES


def _read(path: Path, argument: str) -> tuple[object, object]:
    try:
        if path.suffix == ".npz":
            with np.load(str(path), allow_pickle=False) as arrays:
                content = {key: arrays[key] for key in arrays.files}
        else:
            content = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle refused by weights_only, ...
        raise DatasetError(f"{argument} {str(path)!r}: cannot read it as a sample file: {exc}") from exc
    if not isinstance(content, dict) or not {"images", "labels"} <= set(content):
        found = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise DatasetError(f"{argument} {str(path)!r}: expected entries 'images' and 'labels', found {found}")
    return content["images"], content["labels"]


def _as_tensor(raw: object, what: str) -> torch.Tensor:
    """``raw`` as a tensor; strings, objects and other non-numeric arrays raise :class:`DatasetError`."""
    if isinstance(raw, torch.Tensor):
        return raw
    array = np.asarray(raw)
    if array.dtype.kind not in "biuf":
        raise DatasetError(f"{what} must be numeric, got an array of dtype {array.dtype}")
    return torch.as_tensor(array)


def load_sample_file(path: str | Path, argument: str = "--data") -> SampleFile:
    """Read and check a sample file (module docstring); :class:`DatasetError` naming ``argument`` and the problem."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{argument} {str(path)!r}: the file does not exist")
    raw_images, raw_labels = _read(path, argument)
    images = _as_tensor(raw_images, f"{argument} {str(path)!r}: images")
    labels = _as_tensor(raw_labels, f"{argument} {str(path)!r}: labels")
    if images.ndim != 4 or images.shape[0] == 0 or not images.is_floating_point():
        raise DatasetError(
            f"{argument} {str(path)!r}: images must be a non-empty floating (N, C, H, W) array, "
            f"got {images.dtype} of shape {tuple(images.shape)}"
        )
    if labels.shape != (images.shape[0],) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise DatasetError(
            f"{argument} {str(path)!r}: labels must be integers of shape ({images.shape[0]},), "
            f"got {labels.dtype} of shape {tuple(labels.shape)}"
        )
    if not torch.isfinite(images).all():
        raise DatasetError(f"{argument} {str(path)!r}: images contain NaN or Inf")
    return SampleFile(path=str(path), images=images.to(torch.float64), labels=labels.to(torch.int64))
