#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite.  HYPOTHESIS_PROFILE=thorough for the long run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
venv="${MPCERT_VENV:-$root/.venv}"
cd "$root"
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
# Each test package runs in its own process (smaller peak memory, a clear per-package verdict).
# tests/conftest.py imports every project module first: hypothesis draws constants from the loaded local
# modules, so lazily imported modules used to make derandomized examples depend on test order.
status=0
for init in tests/*/__init__.py; do
    pkg="$(dirname "$init")"
    echo "== $pkg"
    "$venv/bin/python" -m pytest "$pkg" -q -p no:cacheprovider "$@" || status=1
done
exit $status
