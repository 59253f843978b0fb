#!/usr/bin/env bash
# uv (requirements-uv.txt), installed into .venv-uv on first use, then run with the arguments given:
#   scripts/uv.sh venv VENV                       a venv with the project's Python ($PYTHON, or python3)
#   scripts/uv.sh pip install --python VENV/bin/python -r FILE
# Every venv of the project (.venv, .venv-bench, .venv-tools, .venv-package) is made this way. uv's cache
# stays inside the project (.venv-uv/cache), like everything else it installs. Several make targets may
# start it at once: the first installs it under a lock, the others wait.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
home="$root/.venv-uv"
uv="$home/bin/uv"
mkdir -p "$home"
if [[ ! -x $uv || ! -f $home/.installed || $root/requirements-uv.txt -nt $home/.installed ]]; then
    exec 9>"$home.lock"
    flock 9
    if [[ ! -x $uv || ! -f $home/.installed || $root/requirements-uv.txt -nt $home/.installed ]]; then
        "${PYTHON:-python3}" -m venv "$home"
        "$home/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r "$root/requirements-uv.txt"
        touch "$home/.installed"
    fi
    exec 9>&-
fi
export UV_CACHE_DIR="${UV_CACHE_DIR:-$home/cache}" UV_PYTHON="${PYTHON:-python3}" UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1
exec "$uv" "$@"
