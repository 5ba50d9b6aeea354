"""Shared pytest set-up: hypothesis profiles.

``ci`` (default) keeps the suite fast on two cores; ``thorough`` runs at least 10,000 examples
per property.  Select with ``HYPOTHESIS_PROFILE=thorough``.
"""

import importlib
import os
import pkgutil

from hypothesis import HealthCheck, settings

PROJECT_PACKAGES = ("rmt", "certs", "pruning", "verification", "figures")


def import_every_project_module() -> None:
    """Import every module of the project before any test runs.

    Hypothesis (>= 6.131) mixes constants collected from every *local* module in ``sys.modules`` into its
    generated data.  Modules that the code under test imports lazily would grow that pool mid-run, so a
    derandomized test drew different examples depending on which tests ran before it (how a one-ulp MP CDF
    bug surfaced only in whole-suite runs).  With every module imported up front the pool, hence every
    derandomized example, depends only on the collected test files.
    """
    for package in PROJECT_PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            importlib.import_module(info.name)


import_every_project_module()

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=10_000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
