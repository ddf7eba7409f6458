#!/usr/bin/env bash
# The main job, as a demo on one machine with no outside accounts: installs what it needs, starts
# the testbed Asterisk 22 and memcached on 127.0.0.1, writes demo/asterisk-kit.ini (SQLite store in
# demo/data), installs the kit's dialplan into the testbed, creates a demo login and serves
# `asterisk-kit web` on http://127.0.0.1:8080 until Ctrl-C. Run again: it reuses demo/ as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PORT=${DEMO_PORT:-8080}
bash scripts/install-system-deps.sh
bash scripts/asterisk-root.sh >/dev/null
bash scripts/venv.sh
DEMO=$REPO/demo
mkdir -p "$DEMO"
KIT=".venv/bin/asterisk-kit --config $DEMO/asterisk-kit.ini"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  .venv/bin/python -m testbed.asterisk stop "$DEMO/asterisk" || true
}
trap cleanup EXIT INT TERM

.venv/bin/python -m testbed.asterisk stop "$DEMO/asterisk" >/dev/null 2>&1 || true
sleep 1
.venv/bin/python -m testbed.asterisk start "$DEMO/asterisk" >/dev/null
INFO=$DEMO/asterisk/testbed.json
j() { .venv/bin/python -c "import json,sys; print(json.load(open('$INFO'))['$1'])"; }

MC_PORT=${DEMO_MEMCACHED_PORT:-11311}
MC_USER=(); [ "$(id -u)" -eq 0 ] && MC_USER=(-u root)
memcached -l 127.0.0.1 -p "$MC_PORT" -U 0 "${MC_USER[@]}" &
PIDS+=($!)

# The testbed root carries Asterisk's English prompts; the demo plays its beep as the message.
BEEP=$(.venv/bin/python -c "from testbed.asterisk import asterisk_root; print(asterisk_root() / 'usr/share/asterisk/sounds/en_US_f_Allison/beep')")
cat > "$DEMO/asterisk-kit.ini" <<INI
# Demo configuration written by scripts/demo.sh (testbed Asterisk, local memcached, SQLite).
[general]
data_dir = $DEMO/data

[log]
dir = $DEMO/log
level = INFO

[asterisk]
ami_host = 127.0.0.1
ami_port = $(j ami_port)
ami_user = $(j ami_user)
ami_secret = $(j ami_secret)
spool_dir = $(j spool_dir)
etc_dir = $(j etc_dir)
run_user =

[memcached]
servers = 127.0.0.1:$MC_PORT

[web]
listen = 127.0.0.1
port = $PORT

[dialer]
dial_out = Local/\${NUMBER}@demo-callee
sound = $BEEP
ivr_prompt = $BEEP

[blf]
names = 101: Ольга; 102: Иван; 103: Reception; 201: Sales 1; 202: Sales 2
groups = Office: 101-103; Sales: _2XX
INI
# A callee that answers every demo call, so the autodialer can be tried without a trunk, and a few
# extensions with hints on Custom: devices for the BLF panel (change one with
# `.venv/bin/python -m testbed.asterisk cli demo/asterisk "devstate change Custom:101 INUSE"`).
cat > "$(j etc_dir)/extensions_test_demo.conf" <<'DP'
[demo-callee]
exten => _X.,1,Answer()
 same => n,Wait(3)
 same => n,Hangup()

[ext-local]
exten => 101,hint,Custom:101
exten => 102,hint,Custom:102
exten => 103,hint,Custom:103
exten => 201,hint,Custom:201
exten => 202,hint,Custom:202
DP
grep -qx '#include extensions_test_demo.conf' "$(j etc_dir)/extensions.conf" \
  || echo '#include extensions_test_demo.conf' >> "$(j etc_dir)/extensions.conf"
$KIT config check
$KIT install --asterisk-etc "$(j etc_dir)" --no-initd --no-cron --reload
# The demo contexts above may be new to this Asterisk even when the kit's own file is unchanged.
.venv/bin/python -m testbed.asterisk cli "$DEMO/asterisk" "dialplan reload" >/dev/null

if [ ! -f "$DEMO/demo-password.txt" ]; then
  .venv/bin/python -c "import secrets; print(secrets.token_urlsafe(9))" > "$DEMO/demo-password.txt"
  $KIT user add demo --password-stdin < "$DEMO/demo-password.txt"
fi
$KIT blf run &
PIDS+=($!)
$KIT doctor || true
echo
echo "asterisk-kit demo: http://127.0.0.1:$PORT/  login: demo  password: $(cat "$DEMO/demo-password.txt")"
echo "(Ctrl-C stops the web app, Asterisk and memcached)"
$KIT web
