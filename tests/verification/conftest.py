"""Shared fixtures of the verification tests: the offline Fashion-MNIST of the Debian package."""

import pytest

from verification.models.datasets import DEBIAN_FASHION_MNIST_DIR, load_fashion_mnist


@pytest.fixture(scope="session")
def fashion():
    """The full Debian Fashion-MNIST (skips where ``scripts/setup.sh`` could not install it)."""
    if not DEBIAN_FASHION_MNIST_DIR.is_dir():
        pytest.skip(f"{DEBIAN_FASHION_MNIST_DIR} missing (scripts/setup.sh installs it)")
    return load_fashion_mnist()
