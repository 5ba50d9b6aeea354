#!/usr/bin/env bash
# Idempotent set-up: creates .venv next to this repository (or $MPCERT_VENV), installs the
# pinned requirements and mpcert itself (editable).  Safe to run any number of times: it only
# reinstalls when requirements.lock or pyproject.toml changed since the last successful run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MPCERT_VENV:-$root/.venv}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3

# Offline data: Fashion-MNIST ships in Debian's dataset-fashion-mnist package.  Installed when
# missing and we may (root with apt-get); mpcert falls back to scikit-learn's digits otherwise.
fmnist=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ ! -f "$fmnist" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[mpcert setup] installing Debian package dataset-fashion-mnist"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; then
        apt-get update -qq >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
            || echo "[mpcert setup] warning: could not install dataset-fashion-mnist" >&2
    fi
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "[mpcert setup] creating virtual environment $venv"
    "$python" -m venv "$venv"
fi
stamp="$venv/.mpcert-stamp"
want="$(cat "$root/requirements.lock" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[mpcert setup] installing pinned requirements (first run takes about two minutes)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/requirements.lock"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e "$root"
    echo "$want" > "$stamp"
fi
