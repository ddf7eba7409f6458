"""The export job for one customer ([beeline:NAME]): records after the cursor -> mp3 + JSON on the
customer's server.

Per record: details (only when the list item lacks a field), the JSON rendered, the mp3 streamed to
a local temp file, then mp3 and JSON published (temp name, size check, rename; see remote.py).
A small bounded pipeline overlaps the work: up to WORKERS records are downloading or uploading at
once (at most UPLOADERS connections to the customer's server), but results are taken in id order
and the cursor (SQLite store) only ever moves over a prefix of records that are on the server or on
the retry list. A run killed anywhere therefore redoes at most the records in flight; a record sent
again replaces itself under its final name (never two copies), and one whose local temp file
survived is looked up on the server first and not sent again.

Failures are sorted by whose fault they are:
- the record's own (missing, an error body instead of audio, the server refusing this one file):
  the record goes on the retry list with its reason, the cursor moves on, the others are exported;
  later runs retry it until it succeeds or has failed `attempts` runs, then it is skipped
  (beeline_skipped, `asterisk-kit beeline skipped`; `asterisk-kit beeline retry` queues it again).
  A refused upload only counts when the same run delivered another record (else the destination,
  not the record, is refusing).
- everything else (token refused, API 5xx/429/timeouts after retries, destination unreachable,
  host key, the template, the local disk): the run stops with exit 1 and nothing is counted against
  any record; the next run continues from the cursor.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from queue import Queue
from typing import Deque, Dict, Iterator, List, Optional, Set, Tuple

from .. import storage
from . import api
from .remote import HostKeyError, RefusedError, RemoteError, Uploader, make_uploader
from .render import Renderer, TemplateError

log = logging.getLogger("asterisk_kit.beeline.sync")

REQUIRED_FIELDS = ("id", "date", "direction", "phone", "abonent")
WORKERS = 4          # records downloading/uploading at once (bounded: WORKERS temp mp3 files at most)
UPLOADERS = 3        # connections to the customer's server
COMMIT_EVERY = 0.5   # seconds between cursor commits; records past the committed cursor keep their temp file
REFUSED_IN_A_ROW = 3  # this many records refused in a row: the destination refuses, stop the run

_MIGRATIONS = [
    """CREATE TABLE beeline_attempts (
         customer TEXT NOT NULL, record_id TEXT NOT NULL, attempts INTEGER NOT NULL,
         last_error TEXT NOT NULL, updated REAL NOT NULL, PRIMARY KEY (customer, record_id));
       CREATE TABLE beeline_skipped (
         customer TEXT NOT NULL, record_id TEXT NOT NULL, attempts INTEGER NOT NULL,
         error TEXT NOT NULL, skipped_at REAL NOT NULL, PRIMARY KEY (customer, record_id))""",
    # Records the cursor has passed that still have to be delivered; `item` is the list item (JSON)
    # or NULL (details are fetched). beeline_attempts counted failures at the cursor: gone with it.
    """CREATE TABLE beeline_retry (
         customer TEXT NOT NULL, record_id TEXT NOT NULL, attempts INTEGER NOT NULL,
         last_error TEXT NOT NULL, item TEXT, updated REAL NOT NULL, PRIMARY KEY (customer, record_id));
       DROP TABLE beeline_attempts""",
]


class SyncError(Exception):
    """The run could not complete (the message says why); exit status 1. run() attaches its summary."""
    summary: Optional[Summary] = None


class RecordFailed(Exception):
    """This record's own failure (it goes on the retry list); `refused`: the server refused the file."""

    def __init__(self, message: str, refused: bool = False):
        super().__init__(message)
        self.refused = refused


@dataclass
class Summary:
    customer: str
    records: int = 0
    bytes: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    cursor_from: str = ""
    cursor_to: str = ""
    dry_run: bool = False
    error: str = ""

    def line(self) -> str:
        verb = "would be exported (dry run)" if self.dry_run else "exported"
        state = f"FAILED: {self.error}" if self.error else "ok"
        return (f"beeline sync {self.customer}: {self.records} record(s) {verb}, {self.bytes} bytes, "
                f"{self.skipped} skipped, {self.failed} failed (on the retry list), cursor "
                f"{self.cursor_from or '(start)'} -> {self.cursor_to or '(start)'}, {self.seconds:.1f} s; {state}")


@dataclass
class Task:
    rid: str
    item: Optional[dict]      # the list item, or None: fetch the details
    retry: bool = False       # from the retry list (behind the cursor)
    attempts: int = 0         # failed runs so far (retry list)
    maybe_there: bool = False  # an earlier run may have put it on the server


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


def retry_list(conn, name: Optional[str] = None) -> List[dict]:
    sql = "SELECT customer, record_id, attempts, last_error, item FROM beeline_retry"
    rows = conn.execute(sql + (" WHERE customer = ?" if name else "") + " ORDER BY customer, "
                        "CAST(record_id AS INTEGER)", (name,) if name else ()).fetchall()
    return [dict(r) for r in rows]


def requeue(conn, name: str, ids: Optional[List[str]]) -> Tuple[List[str], List[str]]:
    """`beeline retry`: move skipped records (IDS, or all when None) back onto the retry list with
    no failed attempts; the next sync delivers them. Returns (queued, not found)."""
    have = {r["record_id"] for r in skipped(conn, name)}
    want = sorted(have, key=int) if ids is None else ids
    queued, unknown = [r for r in want if r in have], [r for r in want if r not in have]
    with storage.transaction(conn):
        for rid in queued:
            conn.execute("INSERT OR REPLACE INTO beeline_retry (customer, record_id, attempts, last_error, item, "
                         "updated) VALUES (?, ?, 0, 'queued again by `asterisk-kit beeline retry`', NULL, ?)",
                         (name, rid, time.time()))
            conn.execute("DELETE FROM beeline_skipped WHERE customer = ? AND record_id = ?", (name, rid))
    return queued, unknown


def temp_dir(cfg, name: str) -> Path:
    """DATA_DIR/beeline-tmp/NAME, checked to lie inside DATA_DIR/beeline-tmp: NAME is restricted by the
    config, and this makes sure no name ever makes it the data folder (pruning deletes files there)."""
    parent = (Path(cfg.data_dir) / "beeline-tmp").resolve()
    path = (parent / name).resolve()
    if path.parent != parent:
        raise SyncError(f"[beeline:{name}]: temp folder {path} is not inside {parent}")
    return path


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
    """Export one customer's new records (and retry those on its retry list); raises SyncError when
    the run could not complete (the summary is attached as `.summary`)."""
    c = cfg.instances("beeline")[name]
    limit = c["limit"] if limit is None else limit
    started = time.monotonic()
    renderer = Renderer(c["template"], c["timezone"])
    conn = open_store(cfg)
    cursor = get_cursor(conn, name, c)
    summary = Summary(customer=name, cursor_from=cursor, cursor_to=cursor, dry_run=dry_run)
    own_client = client is None
    client = client or api.BeelineClient.from_section(c, sleep=sleep)
    job = None
    tmp: Optional[Path] = None
    try:
        tmp = temp_dir(cfg, name)
        if dry_run:
            _dry_run(conn, name, client, renderer, cursor, limit, summary, out)
        else:
            tmp.mkdir(parents=True, exist_ok=True)
            job = _Job(cfg, conn, name, c, client, renderer, tmp, sleep, summary)
            job.run(cursor, limit)
    except (api.BeelineError, RemoteError, TemplateError, SyncError, OSError) as e:
        # OSError: the local side (temp folder full or not writable); the message names the file.
        summary.error = f"local: {e}" if isinstance(e, OSError) else str(e)
        err = SyncError(summary.error)
        err.summary = summary
        raise err from None
    finally:
        summary.seconds = time.monotonic() - started
        if job:
            job.close()
        if own_client:
            client.close()
        conn.close()
        if tmp is not None and not dry_run:     # None: the folder failed its check; prune nothing
            prune_temp(tmp, max(c["keep_failed"], WORKERS))
    return summary


def _complete(item: dict) -> bool:
    return all(k in item for k in REQUIRED_FIELDS)


def _dry_run(conn, name, client, renderer, cursor, limit, summary, out) -> None:
    write = out.write if out else log.info
    for r in retry_list(conn, name):
        write(f"would retry {r['record_id']} ({r['attempts']} failed run(s)): {r['last_error']}\n")
    while not limit or summary.records < limit:
        page = client.records_after(cursor)
        for item in page:
            if limit and summary.records >= limit:
                break
            rid = str(item["id"])
            rec = item if _complete(item) else client.record(rid)
            write(f"would export {rid}: {renderer.render(rec).decode()}\n")
            summary.records += 1
            cursor = summary.cursor_to = rid
        if not page or client.last_raw_count < api.PAGE_SIZE:
            break


class _Job:
    """One run's pipeline: tasks in order, WORKERS at a time, results taken in order."""

    def __init__(self, cfg, conn, name, c, client, renderer, tmp: Path, sleep, summary: Summary):
        self.cfg, self.conn, self.name, self.c = cfg, conn, name, c
        self.client, self.renderer, self.tmp, self.sleep = client, renderer, tmp, sleep
        self.summary = summary
        self.local = threading.local()
        self.clients: List[api.BeelineClient] = []
        self.uploaders: "Queue[Uploader]" = Queue()
        self.all_uploaders = [make_uploader(c) for _ in range(UPLOADERS)]
        for up in self.all_uploaders:
            self.uploaders.put(up)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        # Temp files left by an earlier run: that run may have put these records on the server.
        self.leftover: Set[str] = {p.name.split(".")[0] for p in tmp.iterdir()}
        self.refused: List[str] = []      # records refused this run (counted if another one got through)

    def close(self) -> None:
        for up in self.all_uploaders:
            up.close()
        for cl in self.clients:
            cl.close()

    # ---- tasks -------------------------------------------------------------------------------

    def tasks(self, cursor: str, limit: int) -> Iterator[Task]:
        for r in retry_list(self.conn, self.name):
            item = json.loads(r["item"]) if r["item"] else None
            yield Task(r["record_id"], item, retry=True, attempts=r["attempts"], maybe_there=True)
        n = 0
        while not limit or n < limit:
            page = self.client.records_after(cursor)
            for item in page:
                if limit and n >= limit:
                    return
                rid = str(item["id"])
                yield Task(rid, item, maybe_there=rid in self.leftover)
                n += 1
                cursor = rid
            if not page or self.client.last_raw_count < api.PAGE_SIZE:
                return

    # ---- the run -----------------------------------------------------------------------------

    def run(self, cursor: str, limit: int) -> None:
        s = self.summary
        # Connect first: a refused host key or a dead server stops the run before any download.
        first = self.uploaders.get()
        try:
            _retrying(first, self.c, self.sleep, "connect to", first.connect)
        finally:
            self.uploaders.put(first)
        pending: Deque[Tuple[Task, Future]] = deque()
        source = self.tasks(cursor, limit)
        committed, last_commit = cursor, time.monotonic()
        done_files: List[str] = []          # records past the cursor in memory, not yet committed
        refused_in_a_row = 0
        failure: Optional[BaseException] = None
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="beeline") as pool:
            try:
                while True:
                    while len(pending) < WORKERS + 1 and not self.stop.is_set():
                        task = next(source, None)
                        if task is None:
                            break
                        pending.append((task, pool.submit(self.deliver, task)))
                    if not pending:
                        break
                    task, fut = pending.popleft()
                    try:
                        sent = fut.result()
                    except RecordFailed as e:
                        refused_in_a_row = refused_in_a_row + 1 if e.refused else 0
                        self.record_failed(task, e)
                        if not task.retry:
                            s.cursor_to = committed = task.rid
                            last_commit = time.monotonic()
                            self.unlink(done_files)
                        if refused_in_a_row >= REFUSED_IN_A_ROW:
                            raise SyncError(f"{refused_in_a_row} records in a row refused by {first.dest}; "
                                            f"the destination refuses uploads (last: {e})") from None
                        continue
                    refused_in_a_row = 0
                    s.records += 1
                    s.bytes += sent
                    if task.retry:
                        self.retry_done(task)
                        self.unlink([task.rid])
                    else:
                        s.cursor_to = task.rid
                        done_files.append(task.rid)
                    if s.cursor_to != committed and time.monotonic() - last_commit >= COMMIT_EVERY:
                        self.commit(s.cursor_to)
                        committed, last_commit = s.cursor_to, time.monotonic()
                        self.unlink(done_files)
            except BaseException as e:
                failure = e
                self.stop.set()
                for _, f in pending:
                    f.cancel()
            finally:
                if s.cursor_to != committed:
                    self.commit(s.cursor_to)
                    self.unlink(done_files)
                self.count_refused()
        if failure is not None:
            raise failure

    def deliver(self, task: Task) -> int:
        """In a worker thread: one record to the server; returns the bytes sent."""
        if self.stop.is_set():
            raise SyncError("stopped")
        rid, c = task.rid, self.c
        client = self.worker_client()
        mp3 = self.tmp / f"{rid}.mp3"
        try:
            rec = task.item if task.item and _complete(task.item) else client.record(rid)
            if "date" not in rec:
                raise api.RecordError(f"record {rid}: no call date in the API's answer")
            body = self.renderer.render(rec)
            size = client.download(rid, str(mp3))
        except (api.RecordError, api.BadResponse) as e:     # not AuthError/TransientError: those stop the run
            raise RecordFailed(str(e)) from None
        up = self.uploaders.get()
        try:
            # mp3 first: a JSON never points at nothing.
            sent = _retrying(up, c, self.sleep, f"upload of {rid}.mp3",
                             lambda: up.publish(str(mp3), f"{rid}.mp3", size, task.maybe_there))
            sent += _retrying(up, c, self.sleep, f"upload of {rid}.json",
                              lambda: up.publish(body, f"{rid}.json", len(body), task.maybe_there))
        except RefusedError as e:
            raise RecordFailed(str(e), refused=True) from None
        finally:
            self.uploaders.put(up)
        log.info("record %s exported: %s.mp3 (%d bytes) + %s.json to %s", rid, rid, size, rid, up.dest)
        return sent

    def worker_client(self) -> api.BeelineClient:
        cl = getattr(self.local, "client", None)
        if cl is None:
            cl = self.local.client = api.BeelineClient.from_section(self.c, sleep=self.sleep)
            with self.lock:
                self.clients.append(cl)
        return cl

    # ---- state -------------------------------------------------------------------------------

    def commit(self, rid: str) -> None:
        with storage.transaction(self.conn):
            storage.state_set(self.conn, job_key(self.name), "last_id", rid)

    def unlink(self, rids: List[str]) -> None:
        for rid in rids:
            for ext in ("mp3", "json"):
                try:
                    (self.tmp / f"{rid}.{ext}").unlink()
                except FileNotFoundError:
                    pass
        rids.clear()

    def retry_done(self, task: Task) -> None:
        with storage.transaction(self.conn):
            self.conn.execute("DELETE FROM beeline_retry WHERE customer = ? AND record_id = ?", (self.name, task.rid))

    def record_failed(self, task: Task, e: RecordFailed) -> None:
        """On the retry list (and the cursor past it, for a new record), or skipped after `attempts`
        failed runs; one transaction. A refused upload is counted at the end of the run."""
        rid, error, now = task.rid, str(e), time.time()
        attempts = task.attempts + (0 if e.refused else 1)
        self.summary.failed += 1
        if e.refused:
            self.refused.append(rid)
        with storage.transaction(self.conn):
            if attempts >= self.c["attempts"]:
                self._skip(rid, attempts, error, now)
            else:
                self.conn.execute(
                    "INSERT INTO beeline_retry (customer, record_id, attempts, last_error, item, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(customer, record_id) DO UPDATE SET "
                    "attempts = excluded.attempts, last_error = excluded.last_error, updated = excluded.updated",
                    (self.name, rid, attempts, error, json.dumps(task.item) if task.item else None, now))
            if not task.retry:
                storage.state_set(self.conn, job_key(self.name), "last_id", rid)
        if attempts < self.c["attempts"]:
            log.error("record %s failed (%d of %d failed runs before it is skipped%s): %s; on the retry list, "
                      "the export goes on", rid, attempts, self.c["attempts"],
                      ", not counted yet: the server refused it" if e.refused else "", error)

    def _skip(self, rid: str, attempts: int, error: str, now: float) -> None:
        self.conn.execute("INSERT OR REPLACE INTO beeline_skipped (customer, record_id, attempts, error, skipped_at) "
                          "VALUES (?, ?, ?, ?, ?)", (self.name, rid, attempts, error, now))
        self.conn.execute("DELETE FROM beeline_retry WHERE customer = ? AND record_id = ?", (self.name, rid))
        self.summary.skipped += 1
        self.summary.failed -= 1
        log.error("record %s SKIPPED after %d failed attempts: %s (listed by `asterisk-kit beeline skipped`, "
                  "queued again by `asterisk-kit beeline retry`)", rid, attempts, error)

    def count_refused(self) -> None:
        """Refused uploads count against their records only when another record got through in this
        run: then the server takes files and refused those ones."""
        if not self.refused or not self.summary.records:
            return
        with storage.transaction(self.conn):
            for rid in self.refused:
                row = self.conn.execute("SELECT attempts, last_error FROM beeline_retry WHERE customer = ? "
                                        "AND record_id = ?", (self.name, rid)).fetchone()
                if row is None:
                    continue
                if row[0] + 1 >= self.c["attempts"]:
                    self._skip(rid, row[0] + 1, row[1], time.time())
                else:
                    self.conn.execute("UPDATE beeline_retry SET attempts = attempts + 1 WHERE customer = ? "
                                      "AND record_id = ?", (self.name, rid))


def _retrying(up, c: dict, sleep, what: str, action):
    pause = c["retry_pause"]
    for n in range(c["retries"] + 1):
        try:
            return action()
        except (HostKeyError, RefusedError):
            raise
        except RemoteError as e:
            up.close()
            if n == c["retries"]:
                raise RemoteError(f"{what} {up.dest}: giving up after {n + 1} attempt(s): {e}") from None
            log.warning("%s failed (attempt %d of %d): %s; retrying in %.1f s", what, n + 1, c["retries"] + 1, e, pause)
            sleep(pause)
            pause *= 2
    raise AssertionError("unreachable")
