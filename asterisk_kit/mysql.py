"""The one way the kit connects to FreePBX's MySQL/MariaDB ([mysql] section): every connection gets
a connect, read and write timeout, so a server that accepts and never answers (or stops answering
mid-query) fails the job after a bounded time instead of hanging it forever while it holds its lock.

pymysql's connect_timeout covers only the TCP connect: the server's greeting and every later answer
are read with read_timeout, which defaults to none at all (wait forever).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping


def connect(m: Mapping[str, Any], database: str, *, streaming: bool = False, autocommit: bool = False):
    """A pymysql connection for the [mysql] section M to DATABASE (e.g. m["cdr_database"]).
    STREAMING: an unbuffered cursor (SSCursor), rows read from the socket as they are used."""
    import pymysql
    import pymysql.cursors
    kw: Dict[str, Any] = dict(user=m["user"], password=m["password"], database=database, charset="utf8mb4",
                              connect_timeout=m["connect_timeout"], read_timeout=m["read_timeout"],
                              write_timeout=m["write_timeout"], autocommit=autocommit,
                              cursorclass=pymysql.cursors.SSCursor if streaming else pymysql.cursors.Cursor)
    kw.update({"unix_socket": m["socket"]} if m["socket"] else {"host": m["host"], "port": m["port"]})
    return pymysql.connect(**kw)
