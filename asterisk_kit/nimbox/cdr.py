"""Reading the FreePBX CDR table (asteriskcdrdb.cdr) for the replicator: streamed, filtered in SQL,
one row per call.

The table has no primary key; a call (all its legs) shares `linkedid` (older tables: `uniqueid`).
Rows are ordered by that call id, then calldate and sequence, so the rows of one call arrive
together and the first qualifying one stands for the call: de-duplication in constant memory,
whatever the number of rows. An unbuffered cursor (SSCursor) keeps the result on the server.
Every value reaches SQL as a parameter.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Dict, Iterator, Optional

COLUMNS = ("calldate", "src", "dst", "duration", "billsec", "disposition", "recordingfile", "linkedid",
           "uniqueid", "sequence")


def connect(cfg, streaming: bool = True):
    from .. import mysql
    return mysql.connect(cfg["mysql"], cfg["mysql"]["cdr_database"], streaming=streaming)


def query(min_dst_len: int, dispositions) -> str:
    where = ["calldate >= %s", "calldate < %s", "CHAR_LENGTH(dst) >= %s"]
    if dispositions:
        where.append("disposition IN (" + ", ".join(["%s"] * len(dispositions)) + ")")
    return (f"SELECT {', '.join(COLUMNS)} FROM cdr WHERE {' AND '.join(where)} "
            "ORDER BY IF(linkedid <> '', linkedid, uniqueid), calldate, sequence")


def calls(conn, since: dt.datetime, until: dt.datetime, min_dst_len: int, dispositions=(),
          stats: Optional[Dict[str, int]] = None) -> Iterator[Dict[str, Any]]:
    """Yield the first qualifying row of each call with calldate in [since, until). STATS gets
    `rows` (read) and `calls` (yielded) counts as it goes."""
    stats = stats if stats is not None else {}
    stats.setdefault("rows", 0)
    stats.setdefault("calls", 0)
    params = [since.strftime("%Y-%m-%d %H:%M:%S"), until.strftime("%Y-%m-%d %H:%M:%S"), int(min_dst_len)]
    params += [d.upper() for d in dispositions]
    cur = conn.cursor()
    try:
        cur.execute(query(min_dst_len, dispositions), params)
        last_id = None
        for values in cur:   # SSCursor: rows come from the socket one by one
            stats["rows"] += 1
            row = dict(zip(COLUMNS, values, strict=True))
            call_id = row["linkedid"] or row["uniqueid"]
            if call_id and call_id == last_id:
                continue
            last_id = call_id
            stats["calls"] += 1
            yield row
    finally:
        cur.close()
