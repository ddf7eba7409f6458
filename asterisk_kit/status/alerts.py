"""E-mail alerts ([alerts]): `asterisk-kit alerts check`, run by cron every few minutes.

Rules, each giving an incident key when it holds:
  job:NAME      the job failed [alerts] failed_runs runs in a row
  outbox        the NiMbox outbox holds more than [alerts] outbox_backlog calls
  blf           the BLF daemon has had no AMI link (or not run) for [alerts] blf_down_minutes
Each incident is mailed once, when it starts, and once more when it is over. The state lives in
the store (alert_state); it is advanced only after the mail went out, so a failed send is tried
again at the next check (a check killed right after sending may send that mail twice: at least once).
"""
from __future__ import annotations

import logging
import socket
import subprocess
import time
from email.message import EmailMessage
from typing import Dict, List, Optional, Tuple

from .. import storage
from . import overview

log = logging.getLogger("asterisk_kit.alerts")

MIGRATIONS = [
    """CREATE TABLE alert_state (
         key TEXT PRIMARY KEY, first_seen REAL NOT NULL, notified REAL, subject TEXT NOT NULL DEFAULT '')""",
]


class AlertError(Exception):
    pass


def incidents(cfg, o: dict, state: Dict[str, dict], now: float) -> Dict[str, Tuple[str, str]]:
    """{key: (subject, body)} of the incidents that hold now (ripe or not: see ripe())."""
    a = cfg["alerts"]
    out: Dict[str, Tuple[str, str]] = {}
    for job in o["jobs"].values():
        if job["failed_in_a_row"] >= a["failed_runs"]:
            out[f"job:{job['job']}"] = (f"{job['job']} failed {job['failed_in_a_row']} times in a row",
                                       f"Last error ({job['error_at']}): {job['error_text']}\n"
                                       f"Last successful run: {job['last_ok_at']}.")
    nb = o.get("nimbox")
    if nb and "outbox" in nb and nb["outbox"] > a["outbox_backlog"]:
        out["outbox"] = (f"NiMbox outbox holds {nb['outbox']} calls (more than {a['outbox_backlog']})",
                         f"Oldest waiting call: {nb['oldest']}. `asterisk-kit nimbox status` shows them.")
    blf = o.get("blf")
    if blf and blf.get("state") not in (None, "up"):
        since = blf.get("down_since") or state.get("blf", {}).get("first_seen") or now
        if now - since >= a["blf_down_minutes"] * 60:
            out["blf"] = (f"BLF daemon without AMI link for {overview.age(now - since).replace(' ago', '')}",
                          blf["text"])
        else:
            out["blf"] = ("", "")        # holds, not ripe yet: remember since when
    return out


def _state(conn) -> Dict[str, dict]:
    storage.migrate(conn, "alerts", MIGRATIONS)
    return {r["key"]: dict(r) for r in conn.execute("SELECT * FROM alert_state")}


def check(cfg, send=None, now: Optional[float] = None) -> List[str]:
    """Evaluate the rules, send what is new or over; returns the subjects sent."""
    now = time.time() if now is None else now
    send = send or (lambda subject, body: send_mail(cfg, subject, body))
    o = overview.collect(cfg, now)
    conn = storage.connect(cfg)
    sent: List[str] = []
    try:
        state = _state(conn)
        current = incidents(cfg, o, state, now)
        for key, (subject, body) in current.items():
            row = state.get(key)
            if row is None:
                with storage.transaction(conn):
                    conn.execute("INSERT INTO alert_state (key, first_seen) VALUES (?, ?)", (key, now))
                row = {"key": key, "first_seen": now, "notified": None}
            if subject and row["notified"] is None:
                send("PROBLEM: " + subject, body)
                sent.append("PROBLEM: " + subject)
                with storage.transaction(conn):
                    conn.execute("UPDATE alert_state SET notified = ?, subject = ? WHERE key = ?", (now, subject, key))
        for key, row in state.items():
            if key in current:
                continue
            if row["notified"] is not None:
                subject = "RECOVERED: " + row["subject"]
                send(subject, "The problem is over.\n\n" + overview.text(o))
                sent.append(subject)
            with storage.transaction(conn):
                conn.execute("DELETE FROM alert_state WHERE key = ?", (key,))
    finally:
        conn.close()
    return sent


def send_mail(cfg, subject: str, body: str) -> None:
    a = cfg["alerts"]
    msg = EmailMessage()
    msg["From"] = a["mail_from"]
    msg["To"] = ", ".join(a["mail_to"])
    msg["Subject"] = f"[asterisk-kit {socket.gethostname()}] {subject}"
    msg.set_content(body + "\n")
    if a["smtp_host"]:
        import smtplib
        try:
            with smtplib.SMTP(a["smtp_host"], a["smtp_port"], timeout=30) as s:
                if a["smtp_starttls"]:
                    s.starttls()
                if a["smtp_user"]:
                    s.login(a["smtp_user"], a["smtp_password"])
                s.send_message(msg)
        except (OSError, smtplib.SMTPException) as e:
            raise AlertError(f"SMTP {a['smtp_host']}:{a['smtp_port']}: {type(e).__name__}: {e}") from None
        return
    try:
        r = subprocess.run([str(a["sendmail"]), "-t", "-oi"], input=msg.as_bytes(), capture_output=True, timeout=60)
    except OSError as e:
        raise AlertError(f"sendmail {a['sendmail']}: {e} (set [alerts] smtp_host to use an SMTP server)") from None
    if r.returncode != 0:
        raise AlertError(f"sendmail {a['sendmail']} exited {r.returncode}: {r.stderr.decode(errors='replace')[:200]}")
