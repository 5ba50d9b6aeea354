#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite.  HYPOTHESIS_PROFILE=thorough for the long run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
venv="${MPCERT_VENV:-$root/.venv}"
cd "$root"
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
# Each test package runs in its own process: some hypothesis checks are order-sensitive when the
# whole suite shares one interpreter (under investigation, see the issue notes).
status=0
for init in tests/*/__init__.py; do
    pkg="$(dirname "$init")"
    echo "== $pkg"
    "$venv/bin/python" -m pytest "$pkg" -q -p no:cacheprovider "$@" || status=1
done
exit $status
