"""The autodialer's tables in the kit's SQLite store: campaigns, their phones and weekly windows,
runs, calls, the suppression list.

A call row is the promise "this number is dialled once per attempt it is due in this run": it is
created with the run (state `pending`), becomes `spooled` only after its call file is in Asterisk's
outgoing folder (`attempts` counts the files handed over), goes back to `pending` with `next_at`
when its outcome earns a retry, and ends `done` / `withdrawn` when its outcome is final.
"""
from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, Dict, List, Optional, Tuple

from .. import storage
from .numbers import Entry

MIGRATIONS = [
    """CREATE TABLE dialer_phones (
         number TEXT PRIMARY KEY, digit TEXT NOT NULL DEFAULT '', comment TEXT NOT NULL DEFAULT '',
         created REAL NOT NULL, updated REAL NOT NULL);
       CREATE TABLE dialer_schedule (weekday INTEGER PRIMARY KEY CHECK (weekday BETWEEN 0 AND 6), start TEXT);
       CREATE TABLE dialer_runs (
         id INTEGER PRIMARY KEY AUTOINCREMENT, trigger TEXT NOT NULL, day TEXT NOT NULL,
         created REAL NOT NULL, started REAL, finished REAL,
         status TEXT NOT NULL, by_user TEXT NOT NULL DEFAULT '', note TEXT NOT NULL DEFAULT '');
       CREATE UNIQUE INDEX dialer_runs_scheduled_day ON dialer_runs (day) WHERE trigger = 'schedule';
       CREATE TABLE dialer_calls (
         run_id INTEGER NOT NULL REFERENCES dialer_runs (id), number TEXT NOT NULL, digit TEXT NOT NULL,
         seq INTEGER NOT NULL, state TEXT NOT NULL, batch INTEGER, spooled REAL, finished REAL,
         result TEXT, dialstatus TEXT, answered INTEGER NOT NULL DEFAULT 0, pressed TEXT, file_status TEXT,
         PRIMARY KEY (run_id, number));
       CREATE INDEX dialer_calls_state ON dialer_calls (run_id, state, seq)""",
    # Why a number was not dialled (e.g. a stored row that no longer renders to a call file).
    "ALTER TABLE dialer_calls ADD COLUMN note TEXT NOT NULL DEFAULT ''",
    # Campaigns (issue 14): the single list, schedule and runs become campaign 1, nothing dropped.
    """CREATE TABLE dialer_campaigns (
         id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'active',
         settings TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL, updated REAL NOT NULL);
       INSERT INTO dialer_campaigns (id, name, created, updated)
         VALUES (1, 'Campaign 1', CAST(strftime('%s', 'now') AS REAL), CAST(strftime('%s', 'now') AS REAL));
       CREATE TABLE dialer_phones_c (
         campaign_id INTEGER NOT NULL DEFAULT 1 REFERENCES dialer_campaigns (id), number TEXT NOT NULL,
         digit TEXT NOT NULL DEFAULT '', comment TEXT NOT NULL DEFAULT '',
         created REAL NOT NULL, updated REAL NOT NULL, PRIMARY KEY (campaign_id, number));
       INSERT INTO dialer_phones_c SELECT 1, number, digit, comment, created, updated FROM dialer_phones;
       DROP TABLE dialer_phones;
       ALTER TABLE dialer_phones_c RENAME TO dialer_phones;
       CREATE INDEX dialer_phones_order ON dialer_phones (campaign_id, created, number);
       CREATE TABLE dialer_schedule_c (
         campaign_id INTEGER NOT NULL REFERENCES dialer_campaigns (id),
         weekday INTEGER NOT NULL CHECK (weekday BETWEEN 0 AND 6), start TEXT, "end" TEXT,
         PRIMARY KEY (campaign_id, weekday));
       INSERT INTO dialer_schedule_c SELECT 1, weekday, start, NULL FROM dialer_schedule;
       DROP TABLE dialer_schedule;
       ALTER TABLE dialer_schedule_c RENAME TO dialer_schedule;
       ALTER TABLE dialer_runs ADD COLUMN campaign_id INTEGER NOT NULL DEFAULT 1;
       ALTER TABLE dialer_runs ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
       ALTER TABLE dialer_runs ADD COLUMN windowed INTEGER NOT NULL DEFAULT 0;
       DROP INDEX dialer_runs_scheduled_day;
       CREATE UNIQUE INDEX dialer_runs_scheduled_day ON dialer_runs (campaign_id, day) WHERE trigger = 'schedule';
       ALTER TABLE dialer_calls ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
       ALTER TABLE dialer_calls ADD COLUMN next_at REAL;
       ALTER TABLE dialer_calls ADD COLUMN history TEXT NOT NULL DEFAULT '';
       ALTER TABLE dialer_calls ADD COLUMN optout INTEGER NOT NULL DEFAULT 0;
       UPDATE dialer_calls SET attempts = 1 WHERE spooled IS NOT NULL;
       CREATE TABLE dialer_suppressed (
         number TEXT PRIMARY KEY, added REAL NOT NULL, source TEXT NOT NULL DEFAULT '',
         note TEXT NOT NULL DEFAULT '')""",
    # The API's results cursor (issue 14): `changed` is a change sequence, bumped by triggers on every
    # insert and update of a call row (whoever writes it: store, runner, AGI), from a counter that never
    # goes back, so a CRM polling "changed > cursor" misses no change and sees none twice, however many
    # rows share a timestamp. `first_call` keeps the first hand-over time (`spooled` is the latest).
    """ALTER TABLE dialer_calls ADD COLUMN changed INTEGER NOT NULL DEFAULT 0;
       ALTER TABLE dialer_calls ADD COLUMN first_call REAL;
       UPDATE dialer_calls SET changed = rowid, first_call = spooled;
       CREATE TABLE dialer_change_seq (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
       INSERT INTO dialer_change_seq (id, n) SELECT 1, coalesce(max(changed), 0) FROM dialer_calls;
       CREATE INDEX dialer_calls_changed ON dialer_calls (changed);
       CREATE TRIGGER dialer_calls_changed_ins AFTER INSERT ON dialer_calls BEGIN
         UPDATE dialer_change_seq SET n = n + 1 WHERE id = 1;
         UPDATE dialer_calls SET changed = (SELECT n FROM dialer_change_seq WHERE id = 1),
           first_call = NEW.spooled WHERE rowid = NEW.rowid;
       END;
       CREATE TRIGGER dialer_calls_changed_upd AFTER UPDATE ON dialer_calls WHEN NEW.changed = OLD.changed BEGIN
         UPDATE dialer_change_seq SET n = n + 1 WHERE id = 1;
         UPDATE dialer_calls SET changed = (SELECT n FROM dialer_change_seq WHERE id = 1),
           first_call = coalesce(OLD.first_call, NEW.spooled) WHERE rowid = NEW.rowid;
       END""",
]

# Run states: queued (created, no process yet) -> running -> done | stopped | failed (Asterisk does not
# take the call files; the note says why); `stopping` asks the running process to withdraw what it has
# not handed over.
ACTIVE = ("queued", "running", "stopping")
RESULTS = ("answered", "busy", "no_answer", "failed", "withdrawn", "suppressed", "window_closed")


def connect(cfg) -> sqlite3.Connection:
    conn = storage.connect(cfg)
    storage.migrate(conn, "dialer", MIGRATIONS)
    return conn


# ---- campaigns ------------------------------------------------------------------------------------

CAMPAIGN_STATES = ("active", "paused", "archived")


def campaigns(conn, archived: bool = False) -> List[sqlite3.Row]:
    return conn.execute("SELECT c.*, (SELECT count(*) FROM dialer_phones p WHERE p.campaign_id = c.id) AS numbers "
                        "FROM dialer_campaigns c" + ("" if archived else " WHERE c.state != 'archived'")
                        + " ORDER BY c.id").fetchall()


def campaign(conn, campaign_id: int) -> Optional[sqlite3.Row]:
    return conn.execute("SELECT * FROM dialer_campaigns WHERE id = ?", (campaign_id,)).fetchone()


def campaign_settings(conn, campaign_id: int) -> Dict[str, Any]:
    row = campaign(conn, campaign_id)
    return json.loads(row["settings"]) if row else {}


def create_campaign(conn, name: str, settings: Optional[Dict[str, Any]] = None) -> int:
    now = time.time()
    with storage.transaction(conn):
        return conn.execute("INSERT INTO dialer_campaigns (name, settings, created, updated) VALUES (?, ?, ?, ?)",
                            (name, json.dumps(settings or {}), now, now)).lastrowid


def update_campaign(conn, campaign_id: int, name: Optional[str] = None, settings: Optional[Dict[str, Any]] = None,
                    state: Optional[str] = None) -> None:
    fields: Dict[str, Any] = {"updated": time.time()}
    if name is not None:
        fields["name"] = name
    if settings is not None:
        fields["settings"] = json.dumps(settings)
    if state is not None:
        if state not in CAMPAIGN_STATES:
            raise ValueError(state)
        fields["state"] = state
    with storage.transaction(conn):
        conn.execute(f"UPDATE dialer_campaigns SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                     (*fields.values(), campaign_id))


def copy_campaign(conn, campaign_id: int, name: str) -> int:
    """A new campaign with the same settings, windows and numbers (not its runs)."""
    src = campaign(conn, campaign_id)
    if src is None:
        raise KeyError(campaign_id)
    now = time.time()
    with storage.transaction(conn):
        new = conn.execute("INSERT INTO dialer_campaigns (name, settings, created, updated) VALUES (?, ?, ?, ?)",
                           (name, src["settings"], now, now)).lastrowid
        conn.execute("INSERT INTO dialer_phones (campaign_id, number, digit, comment, created, updated) "
                     "SELECT ?, number, digit, comment, created, ? FROM dialer_phones WHERE campaign_id = ?",
                     (new, now, campaign_id))
        conn.execute('INSERT INTO dialer_schedule (campaign_id, weekday, start, "end") '
                     'SELECT ?, weekday, start, "end" FROM dialer_schedule WHERE campaign_id = ?', (new, campaign_id))
    return new


# ---- phones ---------------------------------------------------------------------------------------

def phones(conn, campaign_id: int = 1) -> List[sqlite3.Row]:
    return conn.execute("SELECT number, digit, comment FROM dialer_phones WHERE campaign_id = ? "
                        "ORDER BY created, number", (campaign_id,)).fetchall()


def phone_count(conn, campaign_id: int = 1, search: str = "") -> int:
    where, args = _phone_filter(campaign_id, search)
    return conn.execute(f"SELECT count(*) FROM dialer_phones WHERE {where}", args).fetchone()[0]


def phones_page(conn, campaign_id: int = 1, search: str = "", offset: int = 0, limit: int = 100) -> List[sqlite3.Row]:
    """One page of the list, by the (campaign_id, created, number) index: flat at any list size."""
    where, args = _phone_filter(campaign_id, search)
    return conn.execute(f"SELECT number, digit, comment, created, updated FROM dialer_phones WHERE {where} "
                        "ORDER BY created, number LIMIT ? OFFSET ?", (*args, int(limit), int(offset))).fetchall()


def _phone_filter(campaign_id: int, search: str):
    s = (search or "").strip()
    if not s:
        return "campaign_id = ?", (campaign_id,)
    like = "%" + s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return ("campaign_id = ? AND (number LIKE ? ESCAPE '\\' OR comment LIKE ? ESCAPE '\\')",
            (campaign_id, like, like))


def upsert_phones(conn, entries: List[Entry], campaign_id: int = 1) -> Dict[str, int]:
    """Add or update numbers (a number already listed is updated, never listed twice). One statement for
    the whole list; added = the growth of the table (entries hold each number once)."""
    now = time.time()
    with storage.transaction(conn):
        before = phone_count(conn, campaign_id)
        conn.executemany("INSERT INTO dialer_phones (campaign_id, number, digit, comment, created, updated) "
                         "VALUES (?, ?, ?, ?, ?, ?) "
                         "ON CONFLICT(campaign_id, number) DO UPDATE SET digit = excluded.digit, "
                         "comment = excluded.comment, updated = excluded.updated",
                         [(campaign_id, e.number, e.digit, e.comment, now, now) for e in entries])
        added = phone_count(conn, campaign_id) - before
    return {"added": added, "updated": len(entries) - added}


def replace_phone(conn, old_number: str, e: Entry, campaign_id: int = 1) -> None:
    """Edit a row; changing the number onto one already listed merges them."""
    now = time.time()
    with storage.transaction(conn):
        row = conn.execute("SELECT created FROM dialer_phones WHERE campaign_id = ? AND number = ?",
                           (campaign_id, old_number)).fetchone()
        if row is None:
            raise KeyError(old_number)
        conn.execute("DELETE FROM dialer_phones WHERE campaign_id = ? AND number = ?", (campaign_id, old_number))
        conn.execute("INSERT INTO dialer_phones (campaign_id, number, digit, comment, created, updated) "
                     "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(campaign_id, number) DO UPDATE SET "
                     "digit = excluded.digit, comment = excluded.comment, updated = excluded.updated",
                     (campaign_id, e.number, e.digit, e.comment, row[0], now))


def delete_phone(conn, number: str, campaign_id: int = 1) -> bool:
    with storage.transaction(conn):
        return conn.execute("DELETE FROM dialer_phones WHERE campaign_id = ? AND number = ?",
                            (campaign_id, number)).rowcount > 0


def clear_phones(conn, campaign_id: int) -> int:
    with storage.transaction(conn):
        return conn.execute("DELETE FROM dialer_phones WHERE campaign_id = ?", (campaign_id,)).rowcount


# ---- schedule: per weekday a window start..end ------------------------------------------------------

def schedule(conn, campaign_id: int = 1) -> Dict[int, Optional[str]]:
    """Start time per weekday (None: off)."""
    return {d: w[0] if w else None for d, w in windows(conn, campaign_id).items()}


def windows(conn, campaign_id: int = 1) -> Dict[int, Optional[Tuple[str, Optional[str]]]]:
    """(start, end) per weekday, None when off; end None: until midnight (a list from before campaigns)."""
    got = {r[0]: (r[1], r[2]) for r in conn.execute('SELECT weekday, start, "end" FROM dialer_schedule '
                                                    'WHERE campaign_id = ? AND start IS NOT NULL', (campaign_id,))}
    return {d: got.get(d) for d in range(7)}


def set_schedule(conn, days: Dict[int, Optional[str]], campaign_id: int = 1,
                 ends: Optional[Dict[int, Optional[str]]] = None) -> None:
    ends = ends or {}
    with storage.transaction(conn):
        for d, start in days.items():
            conn.execute('INSERT INTO dialer_schedule (campaign_id, weekday, start, "end") VALUES (?, ?, ?, ?) '
                         'ON CONFLICT(campaign_id, weekday) DO UPDATE SET start = excluded.start, '
                         '"end" = excluded."end"',
                         (campaign_id, d, start, ends.get(d) if start else None))


# ---- suppression list (opt-out) ---------------------------------------------------------------------

def suppress(conn, numbers: List[str], source: str, note: str = "") -> int:
    with storage.transaction(conn):
        return conn.executemany("INSERT OR IGNORE INTO dialer_suppressed (number, added, source, note) "
                                "VALUES (?, ?, ?, ?)", [(n, time.time(), source, note) for n in numbers]).rowcount


def unsuppress(conn, number: str) -> bool:
    with storage.transaction(conn):
        return conn.execute("DELETE FROM dialer_suppressed WHERE number = ?", (number,)).rowcount > 0


def suppressed(conn, search: str = "", limit: int = 200) -> List[sqlite3.Row]:
    like = "%" + (search or "").strip() + "%"
    return conn.execute("SELECT * FROM dialer_suppressed WHERE number LIKE ? OR note LIKE ? ORDER BY added DESC "
                        "LIMIT ?", (like, like, limit)).fetchall()


def is_suppressed(conn, number: str) -> bool:
    return conn.execute("SELECT 1 FROM dialer_suppressed WHERE number = ?", (number,)).fetchone() is not None


# ---- runs -----------------------------------------------------------------------------------------

class RunExists(Exception):
    pass


def create_run(conn, trigger: str, day: str, by_user: str = "", campaign_id: int = 1,
               settings: Optional[Dict[str, Any]] = None, only_unanswered_of: Optional[int] = None) -> int:
    """A run with a call row per listed number, in one transaction (so it has all of them or none).

    One active run per campaign, one scheduled run per campaign and day (unique index): a second tick
    the same day cannot start another. SETTINGS (caller ID, message, pacing, retries) are the
    campaign's resolved settings, fixed for the run so every attempt uses the same caller ID.
    ONLY_UNANSWERED_OF: a run of only the numbers whose last outcome in that run was not answered."""
    with storage.transaction(conn):
        active = conn.execute("SELECT id FROM dialer_runs WHERE campaign_id = ? AND status IN (%s)"
                              % ",".join("?" * len(ACTIVE)), (campaign_id, *ACTIVE)).fetchone()
        if active:
            raise RunExists(f"run {active[0]} is still active")
        try:
            cur = conn.execute("INSERT INTO dialer_runs (trigger, day, created, status, by_user, campaign_id, "
                               "settings, "
                               "windowed) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)",
                               (trigger, day, time.time(), by_user, campaign_id, json.dumps(settings or {}),
                                int(trigger == "schedule")))
        except sqlite3.IntegrityError:
            raise RunExists(f"the scheduled run of {day} was already started") from None
        run_id = cur.lastrowid
        if only_unanswered_of is None:
            # A number without a digit of its own gets the campaign's IVR digit (empty: a plain call).
            conn.execute("INSERT INTO dialer_calls (run_id, number, digit, seq, state) "
                         "SELECT ?, number, CASE WHEN digit = '' THEN ? ELSE digit END, "
                         "row_number() OVER (ORDER BY created, number), 'pending' "
                         "FROM dialer_phones WHERE campaign_id = ?",
                         (run_id, str((settings or {}).get("ivr_digit") or ""), campaign_id))
        else:
            conn.execute("INSERT INTO dialer_calls (run_id, number, digit, seq, state) "
                         "SELECT ?, number, digit, row_number() OVER (ORDER BY seq), 'pending' FROM dialer_calls "
                         "WHERE run_id = ? AND coalesce(result, '') != 'answered' AND optout = 0",
                         (run_id, only_unanswered_of))
    return run_id


def active_runs(conn) -> List[sqlite3.Row]:
    return conn.execute("SELECT * FROM dialer_runs WHERE status IN (%s) ORDER BY id"
                        % ",".join("?" * len(ACTIVE)), ACTIVE).fetchall()


def active_run(conn, campaign_id: Optional[int] = None) -> Optional[sqlite3.Row]:
    if campaign_id is None:
        rows = active_runs(conn)
        return rows[0] if rows else None
    return conn.execute("SELECT * FROM dialer_runs WHERE campaign_id = ? AND status IN (%s) ORDER BY id LIMIT 1"
                        % ",".join("?" * len(ACTIVE)), (campaign_id, *ACTIVE)).fetchone()


def run(conn, run_id: int) -> Optional[sqlite3.Row]:
    return conn.execute("SELECT * FROM dialer_runs WHERE id = ?", (run_id,)).fetchone()


def run_settings(row) -> Dict[str, Any]:
    return json.loads(row["settings"] or "{}")


def runs(conn, limit: int = 50, campaign_id: Optional[int] = None) -> List[sqlite3.Row]:
    where, args = ("WHERE r.campaign_id = ? ", (campaign_id,)) if campaign_id is not None else ("", ())
    return conn.execute(
        "SELECT r.*, count(c.number) AS calls, "
        " sum(c.result = 'answered') AS answered, "
        " sum(c.state = 'done' AND c.result != 'answered') AS unanswered, "
        " sum(c.state IN ('pending', 'spooled')) AS open, sum(c.attempts > 0) AS handed "
        f"FROM dialer_runs r LEFT JOIN dialer_calls c ON c.run_id = r.id {where}"
        "GROUP BY r.id ORDER BY r.id DESC LIMIT ?", (*args, limit)).fetchall()


def outcome_counts(conn, run_id: int) -> Dict[str, int]:
    """Numbers of a run per result (a number not finished yet counts as its state: pending, spooled)."""
    return {r[0]: r[1] for r in conn.execute("SELECT coalesce(result, state), count(*) FROM dialer_calls "
                                             "WHERE run_id = ? GROUP BY 1", (run_id,))}


def calls(conn, run_id: int) -> List[sqlite3.Row]:
    return conn.execute("SELECT * FROM dialer_calls WHERE run_id = ? ORDER BY seq", (run_id,)).fetchall()


def progress(conn, run_id: int) -> Dict[str, int]:
    """Counts for the run page's progress bar."""
    row = conn.execute(
        "SELECT count(*), sum(attempts > 0), sum(result = 'answered'), "
        "sum(state = 'done' AND result != 'answered'), sum(state IN ('pending', 'spooled')), sum(optout) "
        "FROM dialer_calls WHERE run_id = ?", (run_id,)).fetchone()
    keys = ("total", "handed", "answered", "unanswered", "open", "optout")
    return {k: int(v or 0) for k, v in zip(keys, row, strict=True)}


def set_run(conn, run_id: int, **fields) -> None:
    cols = ", ".join(f"{k} = ?" for k in fields)
    conn.execute(f"UPDATE dialer_runs SET {cols} WHERE id = ?", (*fields.values(), run_id))


def request_stop(conn, run_id: Optional[int] = None, campaign_id: Optional[int] = None) -> Optional[int]:
    """Ask an active run to stop; a run no process works on is withdrawn here at once."""
    with storage.transaction(conn):
        r = run(conn, run_id) if run_id else active_run(conn, campaign_id)
        if r is None or r["status"] not in ACTIVE:
            return None
        if r["status"] == "queued":
            withdraw_pending(conn, r["id"])
            set_run(conn, r["id"], status="stopped", finished=time.time(), note="stopped before it started")
        else:
            set_run(conn, r["id"], status="stopping")
        return r["id"]


def withdraw_pending(conn, run_id: int) -> int:
    return conn.execute("UPDATE dialer_calls SET state = 'withdrawn', result = 'withdrawn', finished = ?, "
                        "next_at = NULL "
                        "WHERE run_id = ? AND state = 'pending'", (time.time(), run_id)).rowcount


def close_pending(conn, run_id: int, result: str, note: str = "") -> int:
    """Numbers left when a run ends for a reason of its own (its window closed): done with that result."""
    return conn.execute("UPDATE dialer_calls SET state = 'done', result = ?, note = ?, finished = ?, next_at = NULL "
                        "WHERE run_id = ? AND state = 'pending'", (result, note, time.time(), run_id)).rowcount


def record_event(conn, run_id: int, number: str, dialstatus: Optional[str] = None, answered: bool = False,
                 pressed: Optional[str] = None) -> bool:
    """What the dialplan reports through AGI (DIALSTATUS of the outside leg, answer, digit)."""
    sets, vals = [], []
    if dialstatus is not None:
        sets.append("dialstatus = ?"); vals.append(dialstatus)      # noqa: E702
    if answered:
        sets.append("answered = 1")
    if pressed is not None:
        sets.append("pressed = ?"); vals.append(pressed)            # noqa: E702
    if not sets:
        return False
    with storage.transaction(conn):
        return conn.execute(f"UPDATE dialer_calls SET {', '.join(sets)} WHERE run_id = ? AND number = ?",
                            (*vals, run_id, number)).rowcount > 0
