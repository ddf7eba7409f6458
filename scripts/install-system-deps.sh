#!/usr/bin/env bash
# Installs the Debian 12 packages the kit's tests and demo need (idempotent).
# memcached, MariaDB, headless Chromium, OpenSSH (SFTP test server), openssl (FTPS test certificate),
# debootstrap (Asterisk testbed), baresip (a real SIP phone for the BLF tests),
# ffmpeg (autodialer messages: decodes mp3/ogg/m4a/wav uploads) and espeak-ng (Russian text-to-speech).
set -euo pipefail
PKGS=(memcached mariadb-server mariadb-client chromium chromium-driver openssh-server openssh-client
      debootstrap python3-venv sqlite3 procps ca-certificates openssl baresip
      ffmpeg espeak-ng)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
