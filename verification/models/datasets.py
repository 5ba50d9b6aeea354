"""Offline image datasets for the timm bridge: Fashion-MNIST from local idx files, digits as fallback.

Nothing here touches the network unless the caller asks for it with ``download=True``.

Sources, in the order :func:`load_default_dataset` tries them:

1. **A user-given folder** holding the four idx files of the MNIST layout
   ``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (each plain or ``.gz``; torchvision's
   ``<root>/FashionMNIST/raw/`` folder has exactly this layout).
2. **The Debian package** ``dataset-fashion-mnist``, which installs the four ``.gz`` files in
   :data:`DEBIAN_FASHION_MNIST_DIR` (``scripts/setup.sh`` installs it).
3. **torchvision's download**, only with ``download=True`` (never by default, never in tests): the
   files are fetched into ``download_root`` and then read by the same idx parser.
4. **scikit-learn's digits** (:func:`load_digits_dataset`, shipped inside scikit-learn), mapped to
   the same 1 x 28 x 28 input: the 8 x 8 images (values 0..16) are divided by 16, upsampled 3x by
   nearest-neighbour repetition to 24 x 24 and zero-padded by 2 pixels on each side to 28 x 28;
   within each class every fifth image (occurrence index % 5 == 4, in scikit-learn's order) is
   the test split (1442 train / 355 test images).

The idx format (LeCun's MNIST page): a big-endian 4-byte magic ``0x00 0x00 <type> <ndim>`` with
type ``0x08`` (unsigned byte), then ``ndim`` big-endian int32 sizes, then the ``prod(sizes)``
data bytes.  Images have ``ndim = 3`` (magic 2051), labels ``ndim = 1`` (magic 2049).

Images are returned as float32 tensors ``N x 1 x 28 x 28`` normalised as ``(x / 255 - mean) / std``
with the dataset's stated ``mean`` and ``std`` (Fashion-MNIST: the training-set pixel mean 0.2860
and standard deviation 0.3530); labels are int64.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rmt.errors import MPCertError

__all__ = [
    "DatasetError",
    "ImageDataset",
    "CalibrationSubset",
    "DEBIAN_FASHION_MNIST_DIR",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "read_idx",
    "load_fashion_mnist",
    "load_digits_dataset",
    "load_default_dataset",
    "calibration_subset",
]

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
FASHION_MNIST_MEAN = 0.2860
FASHION_MNIST_STD = 0.3530
IMAGE_SIDE = 28

_IDX_UBYTE = 0x08
_IDX_STEMS = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
_DIGITS_UPSAMPLE = 3
_DIGITS_PAD = (IMAGE_SIDE - 8 * _DIGITS_UPSAMPLE) // 2
_DIGITS_TEST_EVERY = 5


class DatasetError(MPCertError):
    """A dataset folder or file is missing, unreadable or malformed (the message names the path)."""


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image classification dataset with a train and a test split.

    ``*_images`` are float32 ``N x 1 x 28 x 28`` tensors already normalised as
    ``(pixel / pixel_max - mean) / std``; ``*_labels`` are int64 in ``0..len(class_names)-1``.
    """

    name: str
    source: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: tuple[str, ...]
    mean: float
    std: float

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class CalibrationSubset:
    """Images and labels drawn from a dataset's training split, with their training-set indices."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    seed: int


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one idx file (plain or gzip) of unsigned bytes into a ``uint8`` array of its stated shape.

    Raises :class:`DatasetError` naming ``path`` for a missing file, a bad magic number, a
    non-ubyte type, or a data length that differs from the product of the stated sizes.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"idx file {str(path)!r} does not exist")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"cannot read idx file {str(path)!r}: {exc}") from exc
    if len(raw) < 4:
        raise DatasetError(f"idx file {str(path)!r} is truncated: {len(raw)} bytes, no header")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != _IDX_UBYTE or ndim < 1:
        raise DatasetError(
            f"idx file {str(path)!r} has magic number {int.from_bytes(raw[:4], 'big')} "
            f"(expected 0x0000{_IDX_UBYTE:02x}NN: unsigned bytes, NN >= 1 dimensions)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"idx file {str(path)!r} is truncated inside its {ndim}-dimension header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != expected:
        raise DatasetError(
            f"idx file {str(path)!r} holds {len(raw) - header} data bytes, but its header states shape {shape} "
            f"({expected} bytes)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _idx_path(folder: Path, split: str, kind: str) -> Path:
    stem = _IDX_STEMS[(split, kind)]
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"dataset folder {str(folder)!r} has no {stem}.gz or {stem}")


def _read_split(folder: Path, split: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    images_path = _idx_path(folder, split, "images")
    labels_path = _idx_path(folder, split, "labels")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DatasetError(f"{str(images_path)!r} holds images of shape {images.shape}, expected N x 28 x 28")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DatasetError(
            f"{str(labels_path)!r} holds {labels.shape} labels for the {images.shape[0]} images of {str(images_path)!r}"
        )
    if labels.size and int(labels.max()) >= num_classes:
        raise DatasetError(f"{str(labels_path)!r} has label {int(labels.max())}, outside 0..{num_classes - 1}")
    return images, labels


def _normalise(pixels: np.ndarray, pixel_max: float, mean: float, std: float) -> torch.Tensor:
    scaled = (pixels.astype(np.float32) / np.float32(pixel_max) - np.float32(mean)) / np.float32(std)
    return torch.from_numpy(np.ascontiguousarray(scaled[:, None, :, :]))


def load_fashion_mnist(
    folder: str | Path | None = None, *, download: bool = False, download_root: str | Path | None = None
) -> ImageDataset:
    """Fashion-MNIST from ``folder`` (idx files), else the Debian package folder, else (opt-in) a download.

    ``download=True`` asks torchvision to fetch the files into ``download_root`` (required then)
    when neither ``folder`` nor the Debian folder is given/present; it is never done by default.
    """
    if folder is not None:
        root = Path(folder)
        if not root.is_dir():
            raise DatasetError(f"dataset folder {str(root)!r} does not exist")
    elif DEBIAN_FASHION_MNIST_DIR.is_dir():
        root = DEBIAN_FASHION_MNIST_DIR
    elif download:
        root = _download_fashion_mnist(download_root)
    else:
        raise DatasetError(
            f"Fashion-MNIST not found: no folder given and {str(DEBIAN_FASHION_MNIST_DIR)!r} does not exist "
            "(install the Debian package dataset-fashion-mnist, pass a folder of idx files, or opt in to download)"
        )
    classes = len(FASHION_MNIST_CLASSES)
    (train_x, train_y), (test_x, test_y) = (_read_split(root, split, classes) for split in ("train", "test"))
    return ImageDataset(
        name="fashion-mnist",
        source=str(root),
        train_images=_normalise(train_x, 255.0, FASHION_MNIST_MEAN, FASHION_MNIST_STD),
        train_labels=torch.from_numpy(train_y.astype(np.int64)),
        test_images=_normalise(test_x, 255.0, FASHION_MNIST_MEAN, FASHION_MNIST_STD),
        test_labels=torch.from_numpy(test_y.astype(np.int64)),
        class_names=FASHION_MNIST_CLASSES,
        mean=FASHION_MNIST_MEAN,
        std=FASHION_MNIST_STD,
    )


def _download_fashion_mnist(download_root: str | Path | None) -> Path:
    if download_root is None:
        raise DatasetError("download=True needs download_root, the folder to download Fashion-MNIST into")
    from torchvision.datasets import FashionMNIST

    try:
        FashionMNIST(str(download_root), train=True, download=True)
    except Exception as exc:  # no network, proxy, checksum failure, ...
        raise DatasetError(f"torchvision could not download Fashion-MNIST into {str(download_root)!r}: {exc}") from exc
    return Path(download_root) / "FashionMNIST" / "raw"


def load_digits_dataset() -> ImageDataset:
    """scikit-learn's 8 x 8 digits mapped to 1 x 28 x 28 (3x nearest upsampling, 2-pixel zero pad).

    Pixels (0..16) are divided by 16; ``mean``/``std`` are those of the mapped training split.
    Test split: within each class, every fifth image (occurrence index % 5 == 4) in scikit-learn's order.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = bunch.images.astype(np.float64) / 16.0
    big = np.repeat(np.repeat(small, _DIGITS_UPSAMPLE, axis=1), _DIGITS_UPSAMPLE, axis=2)
    pixels = np.pad(big, ((0, 0), (_DIGITS_PAD, _DIGITS_PAD), (_DIGITS_PAD, _DIGITS_PAD)))
    labels = bunch.target.astype(np.int64)
    occurrence = np.empty_like(labels)
    for digit in np.unique(labels):
        members = labels == digit
        occurrence[members] = np.arange(members.sum())
    is_test = occurrence % _DIGITS_TEST_EVERY == _DIGITS_TEST_EVERY - 1
    mean, std = float(pixels[~is_test].mean()), float(pixels[~is_test].std())
    return ImageDataset(
        name="sklearn-digits",
        source="sklearn.datasets.load_digits",
        train_images=_normalise(pixels[~is_test], 1.0, mean, std),
        train_labels=torch.from_numpy(labels[~is_test]),
        test_images=_normalise(pixels[is_test], 1.0, mean, std),
        test_labels=torch.from_numpy(labels[is_test]),
        class_names=tuple(str(d) for d in range(10)),
        mean=mean,
        std=std,
    )


def load_default_dataset(
    folder: str | Path | None = None, *, download: bool = False, download_root: str | Path | None = None
) -> ImageDataset:
    """Fashion-MNIST as :func:`load_fashion_mnist` finds it; scikit-learn digits when it is not installed.

    A ``folder`` given explicitly must hold valid files: its errors are raised, never replaced
    by the fallback.
    """
    if folder is not None or DEBIAN_FASHION_MNIST_DIR.is_dir() or download:
        return load_fashion_mnist(folder, download=download, download_root=download_root)
    return load_digits_dataset()


def calibration_subset(dataset: ImageDataset, n: int, seed: int,
                       argument: str = "calibration size n") -> CalibrationSubset:
    """``n`` class-balanced training images chosen with ``numpy.random.default_rng(seed)``.

    ``argument`` names ``n`` in error messages (the command-line flag, e.g. ``--calibration``).

    Class ``c`` (in ``0..K-1``) gets ``n // K`` images, plus one for ``c < n % K``; within a class
    the images are a seeded random choice without replacement.  The result is shuffled with the
    same generator, so it is deterministic in ``(dataset, n, seed)`` (ALGORITHMS.md C12: calibration
    from the training split, class-balanced and seeded).
    """
    total = int(dataset.train_labels.shape[0])
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= total:
        raise DatasetError(f"{argument} {n!r}: must be an integer in 1..{total} (the training split size)")
    rng = np.random.default_rng(seed)
    labels = dataset.train_labels.numpy()
    k = dataset.num_classes
    chosen = []
    for c in range(k):
        want = n // k + (1 if c < n % k else 0)
        members = np.flatnonzero(labels == c)
        if want > members.size:
            raise DatasetError(
                f"{argument} {n}: needs {want} images of class {c}, but the training split of "
                f"{dataset.name!r} has only {members.size}"
            )
        chosen.append(rng.choice(members, size=want, replace=False))
    indices = torch.from_numpy(rng.permutation(np.concatenate(chosen)).astype(np.int64))
    return CalibrationSubset(
        images=dataset.train_images[indices], labels=dataset.train_labels[indices], indices=indices, seed=int(seed)
    )
