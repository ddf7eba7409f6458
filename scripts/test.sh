#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian 12 machine, installing what it needs:
# Debian packages (scripts/install-system-deps.sh), the Asterisk 22 testbed root (cached,
# scripts/asterisk-root.sh), a venv in .venv with the kit and its test extras. Every server the
# tests talk to (Asterisk, memcached, MariaDB, FTP, SFTP, Chromium, fake cloud APIs) is started
# by the tests themselves on 127.0.0.1. Extra arguments go to pytest (e.g. -k web, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
bash scripts/asterisk-root.sh >/dev/null
bash scripts/venv.sh
exec .venv/bin/python -m pytest "$@"
