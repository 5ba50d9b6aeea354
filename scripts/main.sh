#!/usr/bin/env bash
# Set up (idempotent) and run mpcert's main job on the default model; the report lands in
# ./mpcert-report (override with MPCERT_OUT).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
venv="${MPCERT_VENV:-$root/.venv}"
exec "$venv/bin/mpcert" fit default --out "${MPCERT_OUT:-mpcert-report}" "$@"
