"""Offline datasets: idx parsing, the Debian Fashion-MNIST files, user folders, digits fallback, calibration subsets."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rmt.errors import MPCertError
from verification.models import datasets
from verification.models.datasets import (
    DEBIAN_FASHION_MNIST_DIR,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    DatasetError,
    calibration_subset,
    load_default_dataset,
    load_digits_dataset,
    load_fashion_mnist,
    read_idx,
)

def _write_idx(path: Path, array: np.ndarray, magic: bytes | None = None) -> Path:
    header = magic if magic is not None else bytes([0, 0, 0x08, array.ndim])
    raw = header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def _write_folder(folder: Path, n_train: int = 20, n_test: int = 10, seed: int = 0, gz: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        _write_idx(folder / (stem + (".gz" if gz else "")), array)
    return arrays



@pytest.fixture(scope="module")
def digits():
    return load_digits_dataset()


# --- idx parser -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@given(shape=st.lists(st.integers(0, 5), min_size=1, max_size=3), seed=st.integers(0, 2**32 - 1))
def test_read_idx_round_trips_arrays(tmp_path_factory, suffix, shape, seed):
    array = np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)
    path = _write_idx(tmp_path_factory.mktemp("idx") / f"a-idx{suffix}", array)
    read = read_idx(path)
    assert read.dtype == np.uint8 and read.shape == array.shape
    np.testing.assert_array_equal(read, array)


@pytest.mark.parametrize(
    "magic", [bytes([0, 0, 0x0D, 3]), bytes([1, 0, 0x08, 3]), bytes([0, 0, 0x08, 0])], ids=["float", "nonzero", "0dim"]
)
def test_read_idx_rejects_bad_magic_naming_the_path(tmp_path, magic):
    path = _write_idx(tmp_path / "bad-idx3-ubyte", np.zeros((2, 28, 28)), magic=magic)
    with pytest.raises(DatasetError, match="magic") as info:
        read_idx(path)
    assert str(path) in str(info.value) and isinstance(info.value, MPCertError)


def test_read_idx_rejects_truncated_and_oversized_data(tmp_path):
    path = _write_idx(tmp_path / "t-idx3-ubyte", np.zeros((3, 28, 28)))
    good = path.read_bytes()
    for raw in (good[:-1], good + b"\0", good[:2], good[:9]):
        path.write_bytes(raw)
        with pytest.raises(DatasetError, match=str(path)):
            read_idx(path)


def test_read_idx_missing_and_corrupt_gzip(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_idx(tmp_path / "absent.gz")
    corrupt = tmp_path / "corrupt-idx1-ubyte.gz"
    corrupt.write_bytes(b"this is not gzip")
    with pytest.raises(DatasetError, match=str(corrupt)):
        read_idx(corrupt)


# --- the Debian Fashion-MNIST files ----------------------------------------------------------


def test_debian_fashion_mnist_shapes_and_labels(fashion):
    assert fashion.name == "fashion-mnist" and fashion.source == str(DEBIAN_FASHION_MNIST_DIR)
    assert fashion.train_images.shape == (60000, 1, 28, 28) and fashion.test_images.shape == (10000, 1, 28, 28)
    assert fashion.train_images.dtype == torch.float32 and fashion.train_labels.dtype == torch.int64
    assert fashion.num_classes == 10
    assert torch.bincount(fashion.train_labels).tolist() == [6000] * 10
    assert torch.bincount(fashion.test_labels).tolist() == [1000] * 10


def test_stated_normalisation_matches_the_training_pixels(fashion):
    """The stated mean/std are the training pixels' own (to the 4 stated digits): data mean 0, std 1."""
    pixels = fashion.train_images.numpy()
    mean, std = float(pixels.mean(dtype=np.float64)), float(pixels.std(dtype=np.float64))
    assert abs(mean) < 5e-4 and abs(std - 1.0) < 5e-4
    # known-bad: MNIST's constants (0.1307, 0.3081) would not normalise Fashion-MNIST
    raw_mean = mean * FASHION_MNIST_STD + FASHION_MNIST_MEAN
    assert abs((raw_mean - 0.1307) / 0.3081) > 0.4


def test_normalised_pixels_invert_to_the_raw_idx_bytes(fashion):
    raw = read_idx(DEBIAN_FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz")[:50]
    back = (fashion.test_images[:50, 0].double() * FASHION_MNIST_STD + FASHION_MNIST_MEAN) * 255
    np.testing.assert_allclose(back.numpy(), raw, atol=1e-3)


# --- user folders and typed errors -----------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_user_folder_is_read(tmp_path, gz):
    arrays = _write_folder(tmp_path / "fm", gz=gz)
    data = load_fashion_mnist(tmp_path / "fm")
    assert data.source == str(tmp_path / "fm")
    assert data.train_images.shape == (20, 1, 28, 28) and data.test_images.shape == (10, 1, 28, 28)
    assert data.train_labels.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    back = (data.train_images[:, 0].double() * FASHION_MNIST_STD + FASHION_MNIST_MEAN) * 255
    np.testing.assert_allclose(back.numpy(), arrays["train-images-idx3-ubyte"], atol=1e-3)


def test_missing_folder_raises_naming_it(tmp_path):
    with pytest.raises(DatasetError, match=str(tmp_path / "nowhere")):
        load_fashion_mnist(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match=str(tmp_path / "nowhere")):
        load_default_dataset(tmp_path / "nowhere")  # an explicit folder never falls back silently


def test_folder_missing_a_file_raises_naming_folder_and_file(tmp_path):
    _write_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte") as info:
        load_fashion_mnist(tmp_path)
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize(
    "stem, array, message",
    [
        ("train-labels-idx1-ubyte.gz", np.zeros(19), "labels for the 20 images"),
        ("train-labels-idx1-ubyte.gz", np.full(20, 10), "label 10"),
        ("train-images-idx3-ubyte.gz", np.zeros((20, 27, 28)), "N x 28 x 28"),
    ],
    ids=["count", "label-range", "image-size"],
)
def test_inconsistent_folder_raises(tmp_path, stem, array, message):
    _write_folder(tmp_path)
    _write_idx(tmp_path / stem, array)
    with pytest.raises(DatasetError, match=message):
        load_fashion_mnist(tmp_path)


def test_without_debian_files_fashion_fails_and_default_falls_back_to_digits(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "not-installed")
    with pytest.raises(DatasetError, match="not-installed"):
        load_fashion_mnist()
    with pytest.raises(DatasetError, match="download_root"):
        load_fashion_mnist(download=True)  # fails before any network access
    assert load_default_dataset().name == "sklearn-digits"


# --- digits fallback -------------------------------------------------------------------------


def test_digits_mapping_to_28x28(digits):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    assert digits.train_images.shape == (1442, 1, 28, 28) and digits.test_images.shape == (355, 1, 28, 28)
    assert digits.train_labels.dtype == torch.int64 and digits.num_classes == 10
    counts = torch.bincount(digits.test_labels, minlength=10)
    assert counts.min() >= 34 and counts.sum() == 355  # every fifth of each class
    # test image 0 is the first class-0 image with occurrence index 4
    first = int(np.flatnonzero(bunch.target == digits.test_labels[0].item())[4])
    pixels = digits.test_images[0, 0].double() * digits.std + digits.mean
    expected = np.pad(np.kron(bunch.images[first] / 16.0, np.ones((3, 3))), 2)
    np.testing.assert_allclose(pixels.numpy(), expected, atol=1e-5)
    assert abs(float(digits.train_images.double().mean())) < 1e-4


# --- calibration subsets ---------------------------------------------------------------------


@given(n=st.integers(1, 1400), seed=st.integers(0, 2**63 - 1))
def test_calibration_subset_is_class_balanced_deterministic_and_from_train(digits, n, seed):
    subset = calibration_subset(digits, n, seed)
    counts = torch.bincount(subset.labels, minlength=10).tolist()
    assert counts == [n // 10 + (1 if c < n % 10 else 0) for c in range(10)]
    assert len(set(subset.indices.tolist())) == n
    assert torch.equal(subset.images, digits.train_images[subset.indices])
    assert torch.equal(subset.labels, digits.train_labels[subset.indices])
    assert torch.equal(calibration_subset(digits, n, seed).indices, subset.indices)


def test_calibration_subset_depends_on_seed(digits):
    assert not torch.equal(calibration_subset(digits, 64, 0).indices, calibration_subset(digits, 64, 1).indices)


@pytest.mark.parametrize("n", [0, -3, 1443, 2.5, True])
def test_calibration_subset_rejects_bad_sizes(digits, n):
    with pytest.raises(DatasetError, match=r"^calibration size n .*: must be an integer in 1\.\."):
        calibration_subset(digits, n, 0)
    with pytest.raises(DatasetError, match="^--calibration "):
        calibration_subset(digits, n, 0, "--calibration")


def test_calibration_subset_too_few_images_of_a_class(digits):
    with pytest.raises(DatasetError, match="needs 145 images of class"):
        calibration_subset(digits, 1441, 0)
