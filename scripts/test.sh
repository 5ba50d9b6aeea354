#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite.  HYPOTHESIS_PROFILE=thorough for the long run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
venv="${MPCERT_VENV:-$root/.venv}"
cd "$root"
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
exec "$venv/bin/python" -m pytest tests -q -p no:cacheprovider "$@"
