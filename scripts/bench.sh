#!/usr/bin/env bash
# Set up (idempotent), install the benchmark-only extras (requirements-bench.txt: WeightWatcher,
# the peer tool the fit benchmark compares against) and run the benchmarks.  Extra arguments go
# to pytest, e.g. `bash scripts/bench.sh -k fit -s` or `bash scripts/bench.sh benchmarks/bench_cast.py -s`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
venv="${MPCERT_VENV:-$root/.venv}"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/requirements-bench.txt"
cd "$root"
# a benchmark file named in the arguments runs alone (otherwise pytest would also collect the whole folder)
targets=(benchmarks)
for arg in "$@"; do
  if [[ "$arg" == benchmarks/* ]]; then targets=(); fi
done
exec "$venv/bin/python" -m pytest ${targets[@]+"${targets[@]}"} -p no:cacheprovider -o python_files='bench_*.py' "$@"
