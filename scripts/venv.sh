#!/usr/bin/env bash
# Creates .venv (once) and installs the kit into it, editable, with the analytics, test and lint extras.
# Reinstalls only when setup.cfg or pyproject.toml changed since the last install (a stamp in .venv),
# so the demo and the test script start in a moment; pip's chatter goes to .venv/install.log and is
# shown only when the install fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
STAMP=.venv/.asterisk-kit-installed
want=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/asterisk-kit ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
echo "installing the kit into .venv (log: .venv/install.log)" >&2
if ! { .venv/bin/python -m pip install -q --upgrade pip setuptools wheel \
       && .venv/bin/python -m pip install -q -e '.[analytics,test,lint]'; } >.venv/install.log 2>&1; then
  cat .venv/install.log >&2
  exit 1
fi
echo "$want" > "$STAMP"
