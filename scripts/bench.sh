#!/usr/bin/env bash
# Set up (idempotent), install the benchmark-only extras (requirements-bench.txt: WeightWatcher,
# the peer tool the fit benchmark compares against) and run the benchmarks.  Extra arguments go
# to pytest, e.g. `bash scripts/bench.sh -k fit -s`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
venv="${MPCERT_VENV:-$root/.venv}"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/requirements-bench.txt"
cd "$root"
exec "$venv/bin/python" -m pytest benchmarks -p no:cacheprovider -o python_files='bench_*.py' "$@"
