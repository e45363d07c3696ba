#!/usr/bin/env bash
# Re-resolve the lock files from pyproject.toml with uv (`make lock`):
#   requirements/all.txt    every extra (serve, train, dev, team): what `make setup` installs
#   requirements/serve.txt  the base dependencies + the serve extra, constrained to all.txt's
#                           versions: what the image and the Bento install
# Exact versions with SHA-256 hashes for every wheel of them, for Python 3.11 on any platform
# (--universal). The current pins are kept where pyproject.toml still allows them; pass
# --upgrade (`make lock ARGS=--upgrade`) to move everything to the newest allowed releases,
# or --upgrade-package NAME for one. tests/test_lock.py fails when the two disagree.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-uv}
command -v "$UV" >/dev/null 2>&1 || { echo "lock.sh: uv not found; run 'make setup' (it installs uv into .venv) or 'pip install uv'" >&2; exit 1; }
common=(--generate-hashes --universal --python-version 3.11 --quiet --custom-compile-command "make lock" "$@")
"$UV" pip compile pyproject.toml --extra all "${common[@]}" -o requirements/all.txt
"$UV" pip compile pyproject.toml --extra serve -c requirements/all.txt "${common[@]}" -o requirements/serve.txt
echo "lock.sh: wrote requirements/all.txt and requirements/serve.txt"
