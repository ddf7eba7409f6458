"""Extension names: FreePBX's `users` table through one persistent pymysql connection, overlaid by
[blf] names from the config. When MySQL goes away the last names are kept (and it is logged)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Dict, Optional

from .states import EXTEN_RE, parse_names

if TYPE_CHECKING:
    from pymysql.connections import Connection


class NameSource:
    def __init__(self, cfg, log: logging.Logger):
        self.log = log
        self.conn: Optional[Connection] = None
        self.last_mysql: Dict[str, str] = {}
        self.failing = False
        self.configure(cfg)

    def configure(self, cfg) -> None:
        b = cfg["blf"]
        self.config_names = parse_names(b["names"])
        self.mysql: Optional[dict] = dict(cfg["mysql"]) if (cfg.has("mysql") and b["names_from_mysql"]) else None
        self.close()

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None

    def _connect(self, m: dict) -> Connection:
        from .. import mysql
        return mysql.connect(m, m["freepbx_database"], autocommit=True)

    def load(self) -> Dict[str, str]:
        """Current names (blocking: the daemon calls it in a worker thread)."""
        if self.mysql is not None:
            try:
                conn = self.conn
                if conn is None:
                    conn = self.conn = self._connect(self.mysql)
                else:
                    conn.ping(reconnect=True)
                with conn.cursor() as cur:
                    cur.execute("SELECT extension, name FROM users")
                    rows = cur.fetchall()
                self.last_mysql = {str(x).strip(): (n or "").strip()[:80] for x, n in rows
                                   if x is not None and EXTEN_RE.fullmatch(str(x).strip())}
                if self.failing:
                    self.log.info("MySQL is back: %d names read", len(self.last_mysql))
                self.failing = False
            except Exception as e:
                self.close()
                if not self.failing:
                    self.log.error("cannot read names from MySQL (%s: %s); keeping the last %d names",
                                   type(e).__name__, e, len(self.last_mysql))
                self.failing = True
        names = dict(self.last_mysql)
        names.update(self.config_names)
        return names
