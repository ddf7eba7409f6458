"""Missed calls today for the operator panel, read from FreePBX's CDR ([mysql] cdr_database).

Per extension: CDR rows of today whose `dst` is a panel key and whose disposition is NO ANSWER, BUSY
or FAILED (one per call: rows sharing linkedid and dst count once). Per queue: the queue_log table when
the CDR database has one (ABANDON / EXITWITHTIMEOUT, the caller from ENTERQUEUE), else CDR rows with
lastapp = Queue that never reached an agent (empty dstchannel, or not answered). Numbers are masked
for viewers without "see numbers" with the model's privacy rule (calls/privacy.py) before anything
leaves this module. Every value reaches SQL as a parameter.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any, Dict, List, Optional, Set

from .calls.privacy import FULL, Permissions, party

DISPOSITIONS = ("NO ANSWER", "BUSY", "FAILED")
PRIVATE = Permissions(see_numbers=False)


def _clid_name(clid: str) -> str:
    """`"Ivan Petrov" <8495...>` -> Ivan Petrov."""
    clid = clid or ""
    if clid.startswith('"') and '"' in clid[1:]:
        return clid[1:clid.index('"', 1)]
    return clid.split("<", 1)[0].strip()


def read(conn, since: dt.datetime, keys: Set[str]) -> Dict[str, Any]:
    """{"extensions": {ext: [call]}, "queues": {queue: [call]}} of calls since SINCE; call = {time, number,
    name, disposition}, newest first."""
    out: Dict[str, Any] = {"extensions": {}, "queues": {}}
    seen = set()
    with conn.cursor() as cur:
        cur.execute("SELECT calldate, src, clid, dst, disposition, linkedid, uniqueid FROM cdr "
                    "WHERE calldate >= %s AND disposition IN (%s, %s, %s) AND lastapp <> 'Queue' "
                    "ORDER BY calldate DESC", (since, *DISPOSITIONS))
        for calldate, src, clid, dst, disp, linkedid, uniqueid in cur.fetchall():
            if dst not in keys or (linkedid or uniqueid, dst) in seen:
                continue
            seen.add((linkedid or uniqueid, dst))
            out["extensions"].setdefault(dst, []).append(
                {"time": calldate.timestamp(), "number": src, "name": _clid_name(clid), "disposition": disp})
        cur.execute("SHOW TABLES LIKE 'queue_log'")
        if cur.fetchall():
            cur.execute("SELECT time, callid, queuename, event, data2 FROM queue_log WHERE time >= %s "
                        "AND event IN ('ENTERQUEUE', 'ABANDON', 'EXITWITHTIMEOUT') ORDER BY time",
                        (since.strftime("%Y-%m-%d %H:%M:%S"),))
            callers: Dict[str, str] = {}
            rows = []
            for t, callid, queue, event, data2 in cur.fetchall():
                if event == "ENTERQUEUE":
                    callers[callid] = data2 or ""
                else:
                    t = t if isinstance(t, dt.datetime) else dt.datetime.fromisoformat(str(t)[:19])
                    rows.append({"queue": queue, "time": t.timestamp(), "number": callers.get(callid, ""), "name": "",
                                 "disposition": "ABANDON" if event == "ABANDON" else "TIMEOUT"})
            for r in reversed(rows):
                out["queues"].setdefault(r.pop("queue"), []).append(r)
        else:
            cur.execute("SELECT calldate, src, clid, lastdata, disposition, linkedid, uniqueid FROM cdr "
                        "WHERE calldate >= %s AND lastapp = 'Queue' AND (dstchannel = '' OR disposition <> 'ANSWERED') "
                        "ORDER BY calldate DESC", (since,))
            for calldate, src, clid, lastdata, _disp, linkedid, uniqueid in cur.fetchall():
                queue = (lastdata or "").split(",", 1)[0]
                if not queue or (linkedid or uniqueid, queue) in seen:
                    continue
                seen.add((linkedid or uniqueid, queue))
                out["queues"].setdefault(queue, []).append(
                    {"time": calldate.timestamp(), "number": src, "name": _clid_name(clid), "disposition": "ABANDON"})
    return out


def project(data: Dict[str, Any], perms: Permissions, internal) -> Dict[str, Any]:
    """The missed calls as this viewer may see them (outside numbers dropped without see_numbers)."""
    out: Dict[str, Any] = {}
    for what in ("extensions", "queues"):
        out[what] = {}
        for ref, calls in data.get(what, {}).items():
            if what == "queues" and perms.queues is not None and ref not in perms.queues:
                continue
            lst: List[dict] = []
            for c in calls:
                num, name = party(c["number"], c["name"], perms, internal)
                lst.append(dict(c, number=num, name=name))
            out[what][ref] = lst
    return out


class MissedCalls:
    """One copy per web process, refreshed at most every [blf] missed_refresh_seconds on demand."""

    def __init__(self, cfg, log: logging.Logger):
        self.cfg, self.log = cfg, log
        self.refresh = cfg["blf"]["missed_refresh_seconds"]
        self.lock = threading.Lock()
        self.data: Optional[Dict[str, Any]] = None
        self.read_at = 0.0
        self.error: Optional[str] = None

    def get(self, keys: Set[str], see_numbers: bool) -> Dict[str, Any]:
        if not self.cfg.has("mysql"):
            return {"available": False, "configured": False, "extensions": {}, "queues": {}}
        with self.lock:
            if self.data is None or time.monotonic() - self.read_at > self.refresh:
                self._read(keys)
            data = self.data or {"extensions": {}, "queues": {}}
            error = self.error
        out = project(data, FULL if see_numbers else PRIVATE, keys)
        out["available"] = error is None
        return out

    def _read(self, keys: Set[str]) -> None:
        from ..nimbox.cdr import connect
        midnight = dt.datetime.combine(dt.date.today(), dt.time())
        self.read_at = time.monotonic()
        try:
            conn = connect(self.cfg, streaming=False)
            try:
                self.data = read(conn, midnight, keys)
            finally:
                conn.close()
            if self.error:
                self.log.info("BLF: CDR readable again")
            self.error = None
        except Exception as e:
            if self.error is None:
                self.log.error("BLF: cannot read missed calls from the CDR: %s: %s", type(e).__name__, e)
            self.error = f"{type(e).__name__}"
