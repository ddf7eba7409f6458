#!/usr/bin/env bash
# The main job, as a demo on one machine with no outside accounts: installs what it needs, starts
# the testbed Asterisk 22 and memcached on 127.0.0.1, writes demo/asterisk-kit.ini (SQLite store in
# demo/data), installs the kit's dialplan into the testbed, creates a demo login, starts the BLF
# daemon, runs `dialer tick` every minute (what cron does on a PBX, so schedules set on the dialer
# page fire) and serves `asterisk-kit web` on http://127.0.0.1:8080 until Ctrl-C or a kill.
# Stopping it (Ctrl-C, SIGTERM, or DEMO_SECONDS elapsed) stops everything it started.
# Run again: it reuses demo/ as it is. Environment: DEMO_PORT (8080), DEMO_MEMCACHED_PORT (11311),
# DEMO_DIR (demo/), DEMO_SECONDS (run this long, then stop; default: until stopped).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PORT=${DEMO_PORT:-8080}
DEMO=${DEMO_DIR:-$REPO/demo}
bash scripts/install-system-deps.sh
bash scripts/asterisk-root.sh >/dev/null
bash scripts/venv.sh
mkdir -p "$DEMO"
KIT=(.venv/bin/asterisk-kit --config "$DEMO/asterisk-kit.ini")
PIDS=()
AST_PID=""
STOPPED=""
cleanup() {
  # Every child started below, then Asterisk (which the testbed launcher left running on its own);
  # wait for each so nothing is left behind when the script is gone.
  [ -n "$STOPPED" ] && return
  STOPPED=1
  set +e
  trap - INT TERM
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  .venv/bin/python -m testbed.asterisk stop "$DEMO/asterisk" >/dev/null 2>&1
  if [ -n "$AST_PID" ]; then
    for _ in $(seq 100); do kill -0 "$AST_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$AST_PID" 2>/dev/null
  fi
  echo "asterisk-kit demo stopped" >&2
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

.venv/bin/python -m testbed.asterisk stop "$DEMO/asterisk" >/dev/null 2>&1 || true
sleep 1
.venv/bin/python -m testbed.asterisk start "$DEMO/asterisk" >/dev/null
INFO=$DEMO/asterisk/testbed.json
j() { .venv/bin/python -c "import json,sys; print(json.load(open('$INFO'))['$1'])"; }
AST_PID=$(j pid)

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
admins = demo

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
"${KIT[@]}" config check
"${KIT[@]}" install --asterisk-etc "$(j etc_dir)" --no-initd --no-cron --reload >/dev/null
# The demo contexts above may be new to this Asterisk even when the kit's own file is unchanged.
.venv/bin/python -m testbed.asterisk cli "$DEMO/asterisk" "dialplan reload" >/dev/null

if [ ! -f "$DEMO/demo-password.txt" ]; then
  .venv/bin/python -c "import secrets; print(secrets.token_urlsafe(9))" > "$DEMO/demo-password.txt"
  "${KIT[@]}" user add demo --password-stdin < "$DEMO/demo-password.txt"
fi
"${KIT[@]}" blf run &
PIDS+=($!)
# What cron does on a PBX: `dialer tick` every minute, so a schedule set on the dialer page fires.
tick_loop() {
  local sl=""
  trap '[ -n "$sl" ] && kill "$sl" 2>/dev/null; exit 0' TERM
  while :; do
    "${KIT[@]}" dialer tick || true
    sleep 60 & sl=$!
    wait "$sl" || true
  done
}
tick_loop &
PIDS+=($!)
# The doctor after the BLF daemon has its AMI link (up to 20 s), so its line tells the truth.
for _ in $(seq 40); do
  "${KIT[@]}" status 2>/dev/null | grep -q "AMI link up" && break
  sleep 0.5
done
"${KIT[@]}" doctor || true
"${KIT[@]}" web &
PIDS+=($!)
echo
echo "asterisk-kit demo: http://127.0.0.1:$PORT/  login: demo  password: $(cat "$DEMO/demo-password.txt")"
echo "(Ctrl-C stops the web app, the BLF daemon, the dialer ticks, Asterisk and memcached)"
if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS" & PIDS+=($!)
  wait -n "${PIDS[@]}" || true
else
  wait -n "${PIDS[@]}" || true     # the web app, memcached or the daemon ended: stop the rest
fi
