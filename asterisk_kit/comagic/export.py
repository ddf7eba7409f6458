"""The export job: which days to load, fetch them from CoMagic, replace them in the destination.

Incremental rule (no --from/--to): every day from the start up to yesterday in [comagic] timezone
that has no completed load, where the start is first_date, else the earliest loaded day, else
yesterday. Without gaps that is "from the day after the last complete day". A day counts as
complete only once its replace committed (see destinations.py), so a run killed at any point
redoes at most the day it was in. --from/--to reload any range, loaded or not.
"""
from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from . import transform
from .api import ComagicClient

log = logging.getLogger("asterisk_kit.comagic.export")


class ExportError(Exception):
    pass


@dataclass
class Summary:
    days: List[dt.date] = field(default_factory=list)
    rows: int = 0
    seconds: float = 0.0
    requests: int = 0
    rate_wait_seconds: float = 0.0
    destination: str = ""
    dry_run: bool = False

    def line(self) -> str:
        span = f"{self.days[0]} .. {self.days[-1]}" if self.days else "nothing to do"
        verb = "fetched (dry run, nothing written)" if self.dry_run else "loaded"
        return (f"comagic export: {len(self.days)} day(s) {verb} ({span}), {self.rows} rows, "
                f"{self.seconds:.1f} s, {self.requests} API requests, {self.rate_wait_seconds:.1f} s waiting "
                f"for rate limits -> {self.destination}")


def today_in(tz_name: str) -> dt.date:
    if tz_name == "local":
        return dt.datetime.now().astimezone().date()
    from zoneinfo import ZoneInfo
    return dt.datetime.now(ZoneInfo(tz_name)).date()


def day_range(a: dt.date, b: dt.date) -> List[dt.date]:
    return [a + dt.timedelta(days=i) for i in range((b - a).days + 1)]


def plan_days(c: dict, loaded: set, date_from: Optional[dt.date], date_till: Optional[dt.date],
              today: dt.date) -> List[dt.date]:
    yesterday = today - dt.timedelta(days=1)
    if date_from or date_till:
        a = date_from or date_till or yesterday     # (one of them is set)
        b = date_till or yesterday
        if a > b:
            raise ExportError(f"--from {a} is after --to {b}")
        if b > yesterday:
            raise ExportError(f"{b} is not over yet in {c['timezone']} (today is {today}); the last day "
                              f"that can be exported is {yesterday}")
        return day_range(a, b)
    if c["first_date"]:
        start = dt.date.fromisoformat(c["first_date"])
    elif loaded:
        start = min(loaded)
    else:
        start = yesterday
    return [d for d in day_range(start, yesterday) if d not in loaded] if start <= yesterday else []


def chunks(days: Sequence[dt.date], size: int) -> List[List[dt.date]]:
    """Consecutive days grouped into requests of at most SIZE days."""
    out: List[List[dt.date]] = []
    for d in days:
        if out and len(out[-1]) < size and out[-1][-1] + dt.timedelta(days=1) == d:
            out[-1].append(d)
        else:
            out.append([d])
    return out


class Progress:
    """One updating line on a terminal (stderr), nothing when run from cron."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.label, self.got = "", 0

    def start(self, label: str) -> None:
        self.label, self.got = label, 0
        self.show(0)

    def page(self, n: int, total: int) -> None:
        self.got += n
        self.show(total)

    def show(self, total: int) -> None:
        if self.enabled:
            self.stream.write(f"\r{self.label}: {self.got} rows fetched (range total {total})   ")
            self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def run(cfg, date_from: Optional[dt.date] = None, date_till: Optional[dt.date] = None, dry_run: bool = False,
        client: Optional[ComagicClient] = None, progress: Optional[Progress] = None,
        today: Optional[dt.date] = None) -> Summary:
    from .destinations import open_destination
    c = cfg["comagic"]
    started = time.monotonic()
    columns = transform.table_columns(c["fields"])
    dest = open_destination(cfg, columns)
    own_client = client is None
    client = client or ComagicClient.from_config(cfg)
    progress = progress or Progress()
    summary = Summary(destination=dest.describe(), dry_run=dry_run)
    try:
        days = plan_days(c, dest.loaded_days(), date_from, date_till, today or today_in(c["timezone"]))
        if not days:
            log.info("nothing to export: every day up to yesterday is loaded")
        for group in chunks(days, c["chunk_days"]):
            _export_chunk(client, dest, c, columns, group, dry_run, progress, summary)
    finally:
        summary.seconds = time.monotonic() - started
        summary.requests = client.requests_made
        summary.rate_wait_seconds = client.waited_seconds
        dest.close()
        if own_client:
            client.close()
    return summary


def _export_chunk(client, dest, c, columns, group, dry_run, progress, summary) -> None:
    """Fetch the chunk's calls in a producer thread (a couple of pages ahead) while this thread
    converts them, and write every day as soon as the ranges done so far cover it, in a writer
    thread (DuckDB and the BigQuery upload release the GIL): fetching, converting and writing
    overlap. Days are written one at a time and in order, each counted only once its write
    returned; at most one day waits behind the one being written."""
    import threading
    from concurrent.futures import Future, ThreadPoolExecutor
    first, last = group[0], group[-1]
    start = dt.datetime.combine(first, dt.time())
    # Ask up to the next midnight (exclusive) and keep only this chunk's days: a call at exactly
    # midnight belongs to the next chunk.
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time())
    progress.start(f"{first} .. {last}")
    tables: list = []
    pending = list(group)
    writes: List[Future] = []
    failed = threading.Event()

    def write(day, part) -> None:
        if failed.is_set():     # an earlier day's write failed: the run stops there, as it always did
            return
        if not dry_run:
            try:
                dest.replace_day(day, part)
            except BaseException:
                failed.set()
                raise
        summary.days.append(day)
        summary.rows += part.num_rows
        log.info("%s %s: %d calls", "fetched" if dry_run else "loaded", day, part.num_rows)

    def settle(keep: int) -> None:
        while len(writes) > keep:
            writes.pop(0).result()      # re-raises the write's error here

    # Leaving the executor waits for the days already handed to it: they are whole, and each is its
    # own atomic replace, so they are written even when fetching failed meanwhile (as they were when
    # days were written in this thread). After a failed write no later day is written.
    with ThreadPoolExecutor(1, thread_name_prefix="comagic-write") as writer:
        with _Prefetch(lambda on_range: client.iter_calls(
                start, end, c["fields"], page_limit=c["page_limit"], max_rows=c["max_rows_per_range"],
                on_page=progress.page, on_range=on_range)) as items:
            for kind, value in items:
                if kind == "page":
                    tables.append(transform.page_table(value, columns))
                    continue
                ready = [d for d in pending if dt.datetime.combine(d + dt.timedelta(days=1), dt.time()) <= value]
                if not ready:
                    continue
                table = transform.combine(tables, columns)
                tables = [table]
                for day in ready:
                    settle(1)
                    writes.append(writer.submit(write, day, transform.day_slice(table, day)))
                    pending.remove(day)
        settle(0)
    progress.done()
    if pending:
        raise ExportError(f"days {pending[0]} .. {pending[-1]} were not covered by the ranges fetched")


class _Prefetch:
    """Runs a page iterator in a thread, a bounded queue ahead: yields ("page", rows) and
    ("done", t) (every call before t fetched); re-raises the producer's error; stops it on exit."""

    DEPTH = 2

    def __init__(self, make) -> None:
        import queue
        import threading
        self._q: "queue.Queue" = queue.Queue(self.DEPTH)
        self._stop = threading.Event()
        self._make = make
        self._thread = threading.Thread(target=self._run, name="comagic-fetch", daemon=True)

    def _put(self, item) -> None:
        import queue
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        raise _Stopped()

    def _run(self) -> None:
        try:
            for page in self._make(lambda t: self._put(("done", t))):
                self._put(("page", page))
            self._put(("end", None))
        except _Stopped:
            pass
        except BaseException as e:  # handed to the consumer, raised there
            try:
                self._put(("error", e))
            except _Stopped:
                pass

    def __enter__(self):
        self._thread.start()
        return self._items()

    def _items(self):
        while True:
            kind, value = self._q.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield kind, value

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class _Stopped(Exception):
    pass
