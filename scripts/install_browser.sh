#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium for the browser tests
# (tests/serving/test_ui_browser.py, pytest -m browser). Idempotent and non-interactive:
# does nothing when chromium is already on PATH. Needs root (or sudo) and apt.
#
#     scripts/install_browser.sh
#
# Playwright drives it by path (executable_path=/usr/bin/chromium), so there is no
# `playwright install` download. Set CHROMIUM=/path/to/chrome to use another build.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "chromium already installed: $(chromium --version 2>/dev/null || command -v chromium)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install_browser.sh: run as root or install sudo" >&2; exit 1; }
    SUDO="sudo"
fi
command -v apt-get >/dev/null 2>&1 || {
    echo "install_browser.sh: apt-get not found; install Chromium yourself and set CHROMIUM=/path/to/it" >&2
    exit 1
}

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# fonts-liberation: readable text in screenshots; chromium pulls in the rest.
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
echo "installed: $(chromium --version 2>/dev/null)"
