#!/bin/sh
# What the test suite needs from the system besides Python: Debian's chromium (the browser tests drive
# it through Playwright; never a downloaded browser) and an emoji font (the web chat's icons).
# Installed with apt when running as root or with password-less sudo; otherwise it stops at once and
# prints the exact command to run.
set -eu

missing=""
for package in chromium fonts-noto-color-emoji; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $package"
  fi
done
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "The browser tests need Debian's packages:$missing (no apt-get on this machine)." >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo="sudo"
else
  echo "The browser tests need Debian's packages:$missing. Install them, then run make test again:" >&2
  echo "    sudo apt-get update && sudo apt-get install -y$missing" >&2
  exit 1
fi
echo "== installing$missing (Debian packages for the browser tests)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends$missing >/dev/null
