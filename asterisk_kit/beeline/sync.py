"""The export job for one customer ([beeline:NAME]): records after the cursor -> mp3 + JSON on the
customer's server, in id order.

Per record: details (only when the list item lacks a field), the mp3 streamed to a local temp
file, the JSON rendered, then mp3 and JSON published (temp name, size check, rename; see
remote.py), and only then the cursor is advanced in the SQLite store. A run killed anywhere redoes
at most the record it was in, and publish() recognises files an earlier run already put in place.

A record that fails (missing, error body instead of audio, ...) stops the run, because the cursor
cannot pass it; after `attempts` failing runs it is skipped and listed in beeline_skipped, so one
bad record never blocks the others for ever. Token and destination failures never count as a
record's attempt: they are not the record's fault.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from .. import storage
from . import api
from .remote import HostKeyError, RemoteError, make_uploader
from .render import Renderer, TemplateError

log = logging.getLogger("asterisk_kit.beeline.sync")

REQUIRED_FIELDS = ("id", "date", "direction", "phone", "abonent")

_MIGRATIONS = [
    """CREATE TABLE beeline_attempts (
         customer TEXT NOT NULL, record_id TEXT NOT NULL, attempts INTEGER NOT NULL,
         last_error TEXT NOT NULL, updated REAL NOT NULL, PRIMARY KEY (customer, record_id));
       CREATE TABLE beeline_skipped (
         customer TEXT NOT NULL, record_id TEXT NOT NULL, attempts INTEGER NOT NULL,
         error TEXT NOT NULL, skipped_at REAL NOT NULL, PRIMARY KEY (customer, record_id))""",
]


class SyncError(Exception):
    """The run could not complete (the message says why); exit status 1."""


@dataclass
class Summary:
    customer: str
    records: int = 0
    bytes: int = 0
    skipped: int = 0
    seconds: float = 0.0
    cursor_from: str = ""
    cursor_to: str = ""
    dry_run: bool = False
    error: str = ""

    def line(self) -> str:
        verb = "would be exported (dry run)" if self.dry_run else "exported"
        state = f"FAILED: {self.error}" if self.error else "ok"
        return (f"beeline sync {self.customer}: {self.records} record(s) {verb}, {self.bytes} bytes, "
                f"{self.skipped} skipped, cursor {self.cursor_from or '(start)'} -> "
                f"{self.cursor_to or '(start)'}, {self.seconds:.1f} s; {state}")


def job_key(name: str) -> str:
    return f"beeline:{name}"


def open_store(cfg):
    conn = storage.connect(cfg)
    storage.migrate(conn, "beeline", _MIGRATIONS)
    storage.state_get(conn, "beeline", "-")   # applies job_state's migration before any transaction
    return conn


def get_cursor(conn, name: str, c: dict) -> str:
    return storage.state_get(conn, job_key(name), "last_id") or c["start_after_id"]


def skipped(conn, name: Optional[str] = None) -> List[dict]:
    sql = "SELECT customer, record_id, attempts, error, skipped_at FROM beeline_skipped"
    rows = conn.execute(sql + (" WHERE customer = ?" if name else "") + " ORDER BY customer, skipped_at",
                        (name,) if name else ()).fetchall()
    return [dict(r) for r in rows]


def _note_failure(conn, name: str, rid: str, error: str) -> int:
    with storage.transaction(conn):
        conn.execute("INSERT INTO beeline_attempts (customer, record_id, attempts, last_error, updated) "
                     "VALUES (?, ?, 1, ?, ?) ON CONFLICT(customer, record_id) DO UPDATE SET "
                     "attempts = attempts + 1, last_error = excluded.last_error, updated = excluded.updated",
                     (name, rid, error, time.time()))
        return conn.execute("SELECT attempts FROM beeline_attempts WHERE customer = ? AND record_id = ?",
                            (name, rid)).fetchone()[0]


def _skip(conn, name: str, rid: str, attempts: int, error: str) -> None:
    with storage.transaction(conn):
        conn.execute("INSERT OR REPLACE INTO beeline_skipped (customer, record_id, attempts, error, skipped_at) "
                     "VALUES (?, ?, ?, ?, ?)", (name, rid, attempts, error, time.time()))
        conn.execute("DELETE FROM beeline_attempts WHERE customer = ? AND record_id = ?", (name, rid))
        storage.state_set(conn, job_key(name), "last_id", rid)


def _done(conn, name: str, rid: str) -> None:
    with storage.transaction(conn):
        conn.execute("DELETE FROM beeline_attempts WHERE customer = ? AND record_id = ?", (name, rid))
        storage.state_set(conn, job_key(name), "last_id", rid)


def temp_dir(cfg, name: str) -> Path:
    return Path(cfg.data_dir) / "beeline-tmp" / name


def prune_temp(directory: Path, keep: int) -> None:
    """Keep the files of the KEEP most recently failed records, remove older ones."""
    try:
        files = [p for p in directory.iterdir() if p.is_file()]
    except OSError:
        return
    by_record: Dict[str, float] = {}
    for p in files:
        rid = p.name.split(".")[0]
        by_record[rid] = max(by_record.get(rid, 0.0), p.stat().st_mtime)
    old = sorted(by_record, key=lambda r: by_record[r], reverse=True)[keep:]
    for p in files:
        if p.name.split(".")[0] in old:
            try:
                p.unlink()
            except OSError:
                pass


def run(cfg, name: str, *, limit: Optional[int] = None, dry_run: bool = False,
        client: Optional[api.BeelineClient] = None, sleep=time.sleep, out=None) -> Summary:
    """Export one customer's new records; raises SyncError when the run could not complete
    (the summary is attached as `.summary`)."""
    c = cfg.instances("beeline")[name]
    limit = c["limit"] if limit is None else limit
    started = time.monotonic()
    renderer = Renderer(c["template"], c["timezone"])
    conn = open_store(cfg)
    cursor = get_cursor(conn, name, c)
    summary = Summary(customer=name, cursor_from=cursor, cursor_to=cursor, dry_run=dry_run)
    own_client = client is None
    client = client or api.BeelineClient.from_section(c, sleep=sleep)
    up = make_uploader(c)
    tmp = temp_dir(cfg, name)
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        while not limit or summary.records + summary.skipped < limit:
            page = client.records_after(cursor)
            if not page:
                break
            for item in page:
                if limit and summary.records + summary.skipped >= limit:
                    break
                rid = str(item["id"])
                if dry_run:
                    rec = item if all(k in item for k in REQUIRED_FIELDS) else client.record(rid)
                    (out.write if out else log.info)(f"would export {rid}: {renderer.render(rec).decode()}\n")
                    summary.records += 1
                else:
                    sent = _export_record(cfg, conn, name, c, client, up, renderer, item, tmp, sleep, summary)
                    summary.bytes += sent
                cursor = summary.cursor_to = rid
            if client.last_raw_count < api.PAGE_SIZE:
                break
    except (api.BeelineError, RemoteError, TemplateError, SyncError, OSError) as e:
        # OSError: the local side (temp folder full or not writable); the message names the file.
        summary.error = f"local: {e}" if isinstance(e, OSError) else str(e)
        err = SyncError(summary.error)
        err.summary = summary
        raise err from None
    finally:
        summary.seconds = time.monotonic() - started
        up.close()
        if own_client:
            client.close()
        conn.close()
        prune_temp(tmp, c["keep_failed"])
    return summary


def _export_record(cfg, conn, name, c, client, up, renderer, item, tmp: Path, sleep, summary) -> int:
    rid = str(item["id"])
    mp3, js = tmp / f"{rid}.mp3", tmp / f"{rid}.json"
    try:
        rec = item if all(k in item for k in REQUIRED_FIELDS) else client.record(rid)
        if "date" not in rec:
            raise api.RecordError(f"record {rid}: no call date in the API's answer")
        body = renderer.render(rec)
        if not up.connected:
            _retrying(up, c, sleep, "connect to", lambda: up.connect())   # a refused host key: before any download
        size = client.download(rid, str(mp3))
        _write(js, body)
    except api.AuthError:
        raise
    except api.BeelineError as e:
        n = _note_failure(conn, name, rid, str(e))
        if n >= c["attempts"]:
            _skip(conn, name, rid, n, str(e))
            summary.skipped += 1
            log.error("record %s SKIPPED after %d failed attempts: %s (listed by `asterisk-kit beeline skipped`)",
                      rid, n, e)
            for p in (mp3, js):
                _unlink(p)
            return 0
        raise SyncError(f"record {rid} failed (attempt {n} of {c['attempts']} before it is skipped): {e}") from None
    sent = _publish(up, str(mp3), f"{rid}.mp3", size, c, sleep)     # mp3 first: a JSON never points at nothing
    sent += _publish(up, str(js), f"{rid}.json", len(body), c, sleep)
    _done(conn, name, rid)
    summary.records += 1
    log.info("record %s exported: %s.mp3 (%d bytes) + %s.json to %s", rid, rid, size, rid, up.dest)
    for p in (mp3, js):
        _unlink(p)
    return sent


def _publish(up, local: str, remote: str, size: int, c: dict, sleep) -> int:
    return _retrying(up, c, sleep, f"upload of {remote}", lambda: up.publish(local, remote, size))


def _retrying(up, c: dict, sleep, what: str, action):
    pause = c["retry_pause"]
    for n in range(c["retries"] + 1):
        try:
            return action()
        except HostKeyError:
            raise
        except RemoteError as e:
            up.close()
            if n == c["retries"]:
                raise RemoteError(f"{what} {up.dest}: giving up after {n + 1} attempt(s): {e}") from None
            log.warning("%s failed (attempt %d of %d): %s; retrying in %.1f s", what, n + 1, c["retries"] + 1, e, pause)
            sleep(pause)
            pause *= 2
    raise AssertionError("unreachable")


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _unlink(p: Path) -> None:
    try:
        p.unlink()
    except FileNotFoundError:
        pass
