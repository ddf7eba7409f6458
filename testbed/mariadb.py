"""A private, real MariaDB for tests (Debian's mariadb-server binaries, own datadir and port).

Started once per test session by the `mariadb` fixture in tests/conftest.py. Nothing of the host's
MariaDB is touched: own datadir, unix socket and a free TCP port on 127.0.0.1, no grant tables
shared. The FreePBX tables the kit reads are created from the documented schema:
`asteriskcdrdb.cdr` (FreePBX 16 columns, no primary key, as FreePBX has it) and `asterisk.users` /
`asterisk.devices`. A `kit` user gets SELECT only, like the account the admin gives the kit.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from testbed.asterisk import free_port

CDR_DDL = """
CREATE TABLE IF NOT EXISTS cdr (
  calldate datetime NOT NULL DEFAULT '1000-01-01 00:00:00',
  clid varchar(80) NOT NULL DEFAULT '',
  src varchar(80) NOT NULL DEFAULT '',
  dst varchar(80) NOT NULL DEFAULT '',
  dcontext varchar(80) NOT NULL DEFAULT '',
  channel varchar(80) NOT NULL DEFAULT '',
  dstchannel varchar(80) NOT NULL DEFAULT '',
  lastapp varchar(80) NOT NULL DEFAULT '',
  lastdata varchar(80) NOT NULL DEFAULT '',
  duration int(11) NOT NULL DEFAULT 0,
  billsec int(11) NOT NULL DEFAULT 0,
  disposition varchar(45) NOT NULL DEFAULT '',
  amaflags int(11) NOT NULL DEFAULT 0,
  accountcode varchar(20) NOT NULL DEFAULT '',
  uniqueid varchar(32) NOT NULL DEFAULT '',
  userfield varchar(255) NOT NULL DEFAULT '',
  did varchar(50) NOT NULL DEFAULT '',
  recordingfile varchar(255) NOT NULL DEFAULT '',
  cnum varchar(80) NOT NULL DEFAULT '',
  cnam varchar(80) NOT NULL DEFAULT '',
  outbound_cnum varchar(80) NOT NULL DEFAULT '',
  outbound_cnam varchar(80) NOT NULL DEFAULT '',
  dst_cnam varchar(80) NOT NULL DEFAULT '',
  linkedid varchar(32) NOT NULL DEFAULT '',
  peeraccount varchar(80) NOT NULL DEFAULT '',
  sequence int(11) NOT NULL DEFAULT 0,
  KEY calldate (calldate),
  KEY dst (dst),
  KEY accountcode (accountcode),
  KEY uniqueid (uniqueid),
  KEY did (did),
  KEY recordingfile (recordingfile(191))
) DEFAULT CHARSET=utf8mb4
"""

USERS_DDL = """
CREATE TABLE IF NOT EXISTS users (
  extension varchar(20) NOT NULL DEFAULT '',
  password varchar(20) DEFAULT NULL,
  name varchar(50) DEFAULT NULL,
  voicemail varchar(50) DEFAULT NULL,
  ringtimer int(3) DEFAULT NULL,
  noanswer varchar(100) DEFAULT NULL,
  recording varchar(50) DEFAULT NULL,
  outboundcid varchar(50) DEFAULT NULL,
  sipname varchar(50) DEFAULT NULL,
  mohclass varchar(80) DEFAULT 'default',
  KEY extension (extension)
) DEFAULT CHARSET=utf8mb4
"""

DEVICES_DDL = """
CREATE TABLE IF NOT EXISTS devices (
  id varchar(20) NOT NULL DEFAULT '',
  tech varchar(10) NOT NULL DEFAULT '',
  dial varchar(255) NOT NULL DEFAULT '',
  devicetype varchar(5) NOT NULL DEFAULT '',
  user varchar(50) DEFAULT NULL,
  description varchar(50) DEFAULT NULL,
  emergency_cid varchar(100) DEFAULT NULL,
  KEY id (id)
) DEFAULT CHARSET=utf8mb4
"""


class MariaDB:
    def __init__(self, workdir: Path, port: Optional[int] = None):
        self.workdir = Path(workdir)
        self.datadir = self.workdir / "data"
        self.socket = str(self.workdir / "mysqld.sock")
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.kit_user = "kit"
        self.kit_password = secrets.token_hex(8)
        self.cdr_database = "asteriskcdrdb"
        self.freepbx_database = "asterisk"
        self.proc: Optional[subprocess.Popen] = None
        self.log = self.workdir / "mariadb.log"

    # -- lifecycle --
    def _user_args(self) -> list:
        # mariadbd refuses to run as root unless told which user to be; root is fine for a test.
        return ["--user=root"] if os.geteuid() == 0 else []

    def start(self, timeout: float = 60) -> "MariaDB":
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not (self.datadir / "mysql").is_dir():
            install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
            if not install:
                raise RuntimeError("mariadb-install-db not found: run scripts/install-system-deps.sh")
            subprocess.run([install, "--no-defaults", f"--datadir={self.datadir}",
                            "--auth-root-authentication-method=normal", "--skip-test-db", *self._user_args()],
                           check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=180)
        binary = shutil.which("mariadbd", path="/usr/sbin:/usr/bin:" + os.environ.get("PATH", "")) \
            or shutil.which("mysqld", path="/usr/sbin:/usr/bin")
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [binary, "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", f"--pid-file={self.workdir / 'mariadb.pid'}",
             "--skip-log-bin", "--innodb-buffer-pool-size=128M", "--innodb-flush-log-at-trx-commit=2",
             "--skip-name-resolve", *self._user_args()],
            stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                self.root().close()
                break
            except Exception as e:
                if time.time() > deadline:
                    raise RuntimeError(f"mariadbd not ready after {timeout}s:\n"
                                       f"{self.log.read_text()[-3000:]}") from e
                time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    # -- access --
    def root(self, database: Optional[str] = None):
        import pymysql
        return pymysql.connect(unix_socket=self.socket, user="root", password="", database=database,
                               autocommit=True, charset="utf8mb4", connect_timeout=5)

    def execute(self, sql: str, params: Optional[Sequence[Any]] = None, database: Optional[str] = None) -> list:
        """Run one statement as root; returns the fetched rows (empty for statements without any)."""
        conn = self.root(database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]], database: Optional[str] = None) -> None:
        conn = self.root(database)
        try:
            with conn.cursor() as cur:
                cur.executemany(sql, rows)
        finally:
            conn.close()

    # -- FreePBX schema --
    def load_freepbx_schema(self) -> "MariaDB":
        self.execute(f"CREATE DATABASE IF NOT EXISTS {self.cdr_database} CHARACTER SET utf8mb4")
        self.execute(f"CREATE DATABASE IF NOT EXISTS {self.freepbx_database} CHARACTER SET utf8mb4")
        self.execute(CDR_DDL, database=self.cdr_database)
        self.execute(USERS_DDL, database=self.freepbx_database)
        self.execute(DEVICES_DDL, database=self.freepbx_database)
        for host in ("localhost", "127.0.0.1"):
            self.execute(f"CREATE USER IF NOT EXISTS '{self.kit_user}'@'{host}' IDENTIFIED BY %s", (self.kit_password,))
            self.execute(f"GRANT SELECT ON {self.cdr_database}.* TO '{self.kit_user}'@'{host}'")
            self.execute(f"GRANT SELECT ON {self.freepbx_database}.* TO '{self.kit_user}'@'{host}'")
        return self

    def mysql_section(self, via_socket: bool = False) -> str:
        """The kit's `[mysql]` section for the SELECT-only kit user (TCP by default)."""
        lines = ["[mysql]", f"host = {self.host}", f"port = {self.port}", f"user = {self.kit_user}",
                 f"password = {self.kit_password}", f"cdr_database = {self.cdr_database}",
                 f"freepbx_database = {self.freepbx_database}"]
        if via_socket:
            lines.append(f"socket = {self.socket}")
        return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    """`python -m testbed.mariadb DIR`: start one in the foreground (for trying things by hand)."""
    import sys
    argv = sys.argv[1:] if argv is None else argv
    m = MariaDB(Path(argv[0] if argv else "/tmp/asterisk-kit-mariadb")).start().load_freepbx_schema()
    print(m.mysql_section(), flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        m.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
