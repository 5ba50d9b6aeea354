#!/usr/bin/env bash
# Set up (idempotent) and run mpcert's main job: `mpcert demo`, the certificate audit of the embedded
# default model (MP fit, Hybrid Magnitude-SER and CAST 2:4 masks, certify both).  The report lands in
# ./mpcert-report (override with MPCERT_OUT); a previous report there is replaced atomically.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
venv="${MPCERT_VENV:-$root/.venv}"
exec "$venv/bin/mpcert" demo --out "${MPCERT_OUT:-mpcert-report}" --force "$@"
