#!/usr/bin/env bash
# Builds (once, cached) a Debian sid root holding Asterisk 22, which Debian 12 does not package.
# Nothing runs chrooted: the tests start sid's asterisk binary on the host with sid's own loader.
# Prints the root's path. Override the location with ASTERISK_KIT_ASTERISK_ROOT.
set -euo pipefail
ROOT=${ASTERISK_KIT_ASTERISK_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/asterisk-kit/asterisk-sid-root}
if [ -x "$ROOT/usr/sbin/asterisk" ] && [ -f "$ROOT/.asterisk-kit-complete" ]; then
  echo "$ROOT"; exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap missing: run scripts/install-system-deps.sh" >&2; exit 1; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
tmp="$ROOT.partial"
$SUDO rm -rf "$tmp"
mkdir -p "$(dirname "$ROOT")"
echo "debootstrap of Debian sid with asterisk into $ROOT (about a minute, ~500 MB)" >&2
$SUDO debootstrap --variant=minbase --include=asterisk,asterisk-modules sid "$tmp" http://deb.debian.org/debian >&2
$SUDO rm -rf "$ROOT"
$SUDO mv "$tmp" "$ROOT"
$SUDO touch "$ROOT/.asterisk-kit-complete"
echo "$ROOT"
