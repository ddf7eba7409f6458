"""Where the calls go: a local DuckDB file (default) or a BigQuery table, both day-partitioned.

Both offer the same two operations:
- replace_day(day, df): the day's rows become exactly DF, atomically (a re-run never duplicates,
  a killed run leaves the old day or the new one, never half);
- loaded_days(): days whose load completed, which the incremental rule reads.

Local: DELETE + INSERT of the day and its load record in ONE DuckDB transaction. BigQuery: a load
job into the partition decorator `table$YYYYMMDD` with WRITE_TRUNCATE (atomic on Google's side),
then the load record in the kit's SQLite store once the job is DONE; a kill between the two only
makes the next run load that day again.
"""
from __future__ import annotations

import datetime as dt
import io
import logging
import time
from pathlib import Path
from typing import Sequence, Set

from .transform import PARTITION, Column, bigquery_schema

log = logging.getLogger("asterisk_kit.comagic.destinations")

LOCAL_TABLE = "calls"
LOADS_TABLE = "comagic_loaded_days"


class DestinationError(Exception):
    pass


def _check_day(table, day: dt.date) -> None:
    import pyarrow.compute as pc
    if table.num_rows and not pc.all(pc.equal(table.column(PARTITION), day)).as_py():
        raise DestinationError(f"rows of other days in the load of {day}")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class LocalDestination:
    """DuckDB file: table `calls` (same columns as the BigQuery table) + `comagic_loaded_days`.

    The file is opened only for each operation (DuckDB lets one process write it, and nobody else
    open it meanwhile), so analysts can query it between two days' loads of a long run."""

    OPEN_WAIT = 60.0   # seconds to wait for a reader holding the file

    def __init__(self, path: Path, columns: Sequence[Column]):
        self.path = Path(path)
        self.columns = list(columns)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cols = ", ".join(f"{_quote(c.name)} {c.duckdb_type()}" for c in self.columns)
        with self._open() as con:
            con.execute(f"CREATE TABLE IF NOT EXISTS {LOCAL_TABLE} ({cols})")
            con.execute(f"CREATE TABLE IF NOT EXISTS {LOADS_TABLE} (day DATE PRIMARY KEY, "
                        "rows BIGINT NOT NULL, loaded_at TIMESTAMP NOT NULL)")
            have = [(r[0], r[1]) for r in con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
                "ORDER BY ordinal_position", [LOCAL_TABLE]).fetchall()]
        want = [(c.name, c.duckdb_type()) for c in self.columns]
        if have != want:
            raise DestinationError(
                f"{self.path}: table {LOCAL_TABLE} has columns {[h[0] for h in have]}, the config's fields give "
                f"{[w[0] for w in want]}; point local_path at a new file (or drop the table) after changing fields")

    def _open(self):
        import duckdb
        deadline = time.monotonic() + self.OPEN_WAIT
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as e:  # another process holds the file (e.g. an open CLI)
                if time.monotonic() > deadline:
                    raise DestinationError(f"cannot open {self.path}: {e}") from None
                time.sleep(1.0)
            except duckdb.Error as e:
                raise DestinationError(f"cannot open {self.path}: {e}") from None

    def describe(self) -> str:
        return f"local DuckDB {self.path} (table {LOCAL_TABLE})"

    def loaded_days(self) -> Set[dt.date]:
        with self._open() as con:
            return {r[0] for r in con.execute(f"SELECT day FROM {LOADS_TABLE}").fetchall()}

    def replace_day(self, day: dt.date, batch) -> None:
        """BATCH: the day's calls as an Arrow table of the table definition's schema."""
        import duckdb
        _check_day(batch, day)
        names = ", ".join(_quote(c.name) for c in self.columns)
        with self._open() as con:
            con.register("batch", batch)
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"DELETE FROM {LOCAL_TABLE} WHERE {PARTITION} = ?", [day])
                if batch.num_rows:
                    con.execute(f"INSERT INTO {LOCAL_TABLE} ({names}) SELECT {names} FROM batch")
                con.execute(f"INSERT OR REPLACE INTO {LOADS_TABLE} VALUES (?, ?, now()::TIMESTAMP)",
                            [day, batch.num_rows])
                con.execute("COMMIT")
            except BaseException as e:
                con.execute("ROLLBACK")
                if isinstance(e, duckdb.Error):
                    raise DestinationError(f"{self.path}: load of {day} failed: {e}") from None
                raise

    def close(self) -> None:
        pass


_BQ_LOAD_MIGRATIONS = [
    """CREATE TABLE comagic_bigquery_loads (
         table_id TEXT NOT NULL, day TEXT NOT NULL, rows INTEGER NOT NULL, loaded_at REAL NOT NULL,
         PRIMARY KEY (table_id, day))""",
]


class BigQueryDestination:
    """Table partitioned by day on PARTITION_DATE; each day loaded into `table$YYYYMMDD`."""

    def __init__(self, cfg, columns: Sequence[Column], timeout: float = 600.0):
        from google.api_core import exceptions as gexc
        from google.auth.exceptions import GoogleAuthError
        from google.cloud import bigquery
        from requests import RequestException

        from .. import storage
        c = cfg["comagic"]
        self.columns = list(columns)
        self.timeout = timeout
        self.table_id = f"{c['bigquery_project']}.{c['bigquery_dataset']}.{c['bigquery_table']}"
        self.client = make_client(cfg)
        self.schema = bigquery_schema(self.columns)
        self._bigquery = bigquery
        try:
            dataset = bigquery.Dataset(f"{c['bigquery_project']}.{c['bigquery_dataset']}")
            if c["bigquery_location"]:
                dataset.location = c["bigquery_location"]
            try:  # get first: a service account may read a dataset it has no right to create
                self.client.get_dataset(dataset.reference, timeout=60)
            except gexc.NotFound:
                self.client.create_dataset(dataset, exists_ok=True, timeout=60)
            try:
                table = self.client.get_table(self.table_id, timeout=60)
            except gexc.NotFound:
                table = bigquery.Table(self.table_id, schema=self.schema)
                table.time_partitioning = bigquery.TimePartitioning(
                    type_=bigquery.TimePartitioningType.DAY, field=PARTITION)
                table = self.client.create_table(table, exists_ok=True, timeout=60)
                log.info("created BigQuery table %s partitioned by day on %s", self.table_id, PARTITION)
        except (gexc.GoogleAPIError, GoogleAuthError, RequestException) as e:
            raise DestinationError(f"BigQuery {self.table_id}: {e}") from None
        tp = table.time_partitioning
        if tp is None or tp.field != PARTITION or tp.type_ != "DAY":
            raise DestinationError(f"BigQuery table {self.table_id} exists but is not partitioned by DAY on "
                                   f"{PARTITION}; per-day replace needs that")
        have = [f.name for f in table.schema]
        if have != [c.name for c in self.columns]:
            raise DestinationError(f"BigQuery table {self.table_id} has columns {have}, the config's fields give "
                                   f"{[c.name for c in self.columns]}; "
                                   "use another bigquery_table after changing fields")
        self.db = storage.connect(cfg)
        storage.migrate(self.db, "comagic_bigquery_loads", _BQ_LOAD_MIGRATIONS)

    def describe(self) -> str:
        return f"BigQuery {self.table_id}"

    def loaded_days(self) -> Set[dt.date]:
        rows = self.db.execute("SELECT day FROM comagic_bigquery_loads WHERE table_id = ?", (self.table_id,))
        return {dt.date.fromisoformat(r[0]) for r in rows}

    def replace_day(self, day: dt.date, batch) -> None:
        """Parquet of BATCH (an Arrow table) loaded into the day's partition, replacing it."""
        import pyarrow as pa
        import pyarrow.parquet as pq
        from google.api_core import exceptions as gexc
        from google.auth.exceptions import GoogleAuthError
        from requests import RequestException

        from .. import storage
        _check_day(batch, day)
        bq = self._bigquery
        parquet_options = bq.ParquetOptions()
        parquet_options.enable_list_inference = True   # list<string> -> REPEATED STRING
        job_config = bq.LoadJobConfig(
            schema=self.schema, write_disposition=bq.WriteDisposition.WRITE_TRUNCATE,
            source_format=bq.SourceFormat.PARQUET, parquet_options=parquet_options,
            time_partitioning=bq.TimePartitioning(type_=bq.TimePartitioningType.DAY, field=PARTITION))
        target = f"{self.table_id}${day:%Y%m%d}"
        sink = pa.BufferOutputStream()
        pq.write_table(batch, sink, compression="snappy")
        data = io.BytesIO(sink.getvalue().to_pybytes())
        try:
            job = self.client.load_table_from_file(data, target, job_config=job_config, rewind=True,
                                                   timeout=self.timeout)
            job.result(timeout=self.timeout)
        except (gexc.GoogleAPIError, GoogleAuthError, RequestException, ValueError) as e:
            raise DestinationError(f"BigQuery load of {target}: {e}") from None
        with storage.transaction(self.db):
            self.db.execute("INSERT INTO comagic_bigquery_loads (table_id, day, rows, loaded_at) VALUES (?, ?, ?, ?) "
                            "ON CONFLICT(table_id, day) DO UPDATE SET rows = excluded.rows, "
                            "loaded_at = excluded.loaded_at",
                            (self.table_id, day.isoformat(), batch.num_rows, time.time()))

    def close(self) -> None:
        self.db.close()
        self.client.close()


def make_client(cfg):
    """bigquery.Client from the config: service-account file, else application default
    credentials; anonymous only when an api endpoint override is set (tests, emulators)."""
    from google.cloud import bigquery
    c = cfg["comagic"]
    kw = {"project": c["bigquery_project"]}
    if c["bigquery_api_endpoint"]:
        kw["client_options"] = {"api_endpoint": c["bigquery_api_endpoint"]}
    if c["credentials_file"]:
        from google.oauth2 import service_account
        try:
            kw["credentials"] = service_account.Credentials.from_service_account_file(
                c["credentials_file"], scopes=["https://www.googleapis.com/auth/bigquery"])
        except (OSError, ValueError) as e:
            raise DestinationError(f"[comagic] credentials_file {c['credentials_file']}: {e}") from None
    elif c["bigquery_api_endpoint"]:
        from google.auth.credentials import AnonymousCredentials
        kw["credentials"] = AnonymousCredentials()
    try:
        return bigquery.Client(**kw)
    except Exception as e:  # google.auth.exceptions.DefaultCredentialsError and friends
        raise DestinationError(f"BigQuery client: {e} (set [comagic] credentials_file to a service account "
                               f"JSON file, or configure application default credentials)") from None


def local_path(cfg) -> Path:
    p = cfg["comagic"]["local_path"]
    if not p:
        return Path(cfg.data_dir) / "comagic.duckdb"
    return Path(cfg.data_dir) / Path(p).expanduser()  # a relative path is taken inside data_dir


def open_destination(cfg, columns: Sequence[Column]):
    if cfg["comagic"]["destination"] == "bigquery":
        return BigQueryDestination(cfg, columns)
    return LocalDestination(local_path(cfg), columns)
