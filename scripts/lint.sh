#!/usr/bin/env bash
# Lint and type checks: ruff (pyflakes, pycodestyle, import order, bugbear) over the whole repository
# and mypy over asterisk_kit/, both configured in pyproject.toml. Installs .venv first (scripts/venv.sh,
# a no-op when it is up to date). Runs both tools even when the first one finds something, so one run
# shows every finding; exits non-zero when either does.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh || exit 1
rc=0
echo "ruff check ." >&2
.venv/bin/ruff check . || rc=1
echo "mypy (asterisk_kit)" >&2
.venv/bin/mypy || rc=1
exit $rc
