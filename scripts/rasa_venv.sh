#!/bin/sh
# Builds the Rasa 3.6.21 venv that `make bench-rasa` and `make test-rasa` use, outside .venv: Rasa 3.6 needs
# Python 3.10 and pins packages our stack cannot share (docs DESIGN 3.3). Idempotent: a venv whose
# `rasa --version` already says 3.6.21 is left alone. RASA_VENV moves it; RASA_PYTHON picks the interpreter.
set -eu

version=3.6.21
venv="${RASA_VENV:-$HOME/.cache/pontibot/rasa-$version}"
here="$(cd "$(dirname "$0")" && pwd)"

if [ -x "$venv/bin/rasa" ] && "$venv/bin/rasa" --version 2>/dev/null | grep -Eq "^Rasa Version *: *$version\$"; then
  echo "Rasa $version is ready in $venv"
  exit 0
fi

is_python310() {
  [ -n "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null
}

python="${RASA_PYTHON:-}"
if [ -n "$python" ] && ! is_python310 "$python"; then
  echo "RASA_PYTHON=$python is not a working Python 3.10, which Rasa $version needs." >&2
  exit 1
fi
if [ -z "$python" ]; then
  # pyenv's shim on PATH may exist without a 3.10 selected, so every candidate is asked for its version.
  for candidate in "$HOME"/.pyenv/versions/3.10.*/bin/python3.10 "$(command -v python3.10 || true)"; do
    if is_python310 "$candidate"; then
      python="$candidate"
      break
    fi
  done
fi
if [ -z "$python" ]; then
  echo "Rasa $version needs Python 3.10, and none was found (looked at ~/.pyenv/versions/3.10.* and" >&2
  echo "python3.10 on PATH). Install one, e.g. 'pyenv install 3.10', or point RASA_PYTHON at it." >&2
  exit 1
fi

# Only ever replace a venv (or nothing): RASA_VENV pointing at another directory is refused, not emptied.
if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ] && [ -n "$(ls -A "$venv")" ]; then
  echo "$venv exists and is not a venv; set RASA_VENV to a new directory." >&2
  exit 1
fi

echo "== building Rasa $version in $venv with $python (TensorFlow 2.12: a few minutes, about 3 GB)"
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -c "$here/rasa-constraints.txt" "rasa==$version"
"$venv/bin/rasa" --version
echo "Rasa $version is ready in $venv"
