#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite.  HYPOTHESIS_PROFILE=thorough for the long run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
venv="${MPCERT_VENV:-$root/.venv}"
cd "$root"
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
# Each test package runs in its own process (smaller peak memory, a clear per-package verdict).  Under a
# shared interpreter hypothesis drew other examples (its derandomized stream is not independent of the
# run's history), which is how a one-ulp CDF bug at the MP lower edge was found; it is fixed and
# pinned by tests/rmt/test_mp_law.py::test_cdf_is_exactly_the_atom_at_the_lower_edge_regression.
status=0
for init in tests/*/__init__.py; do
    pkg="$(dirname "$init")"
    echo "== $pkg"
    "$venv/bin/python" -m pytest "$pkg" -q -p no:cacheprovider "$@" || status=1
done
exit $status
