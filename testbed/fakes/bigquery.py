"""A fake BigQuery REST endpoint on 127.0.0.1: just what google-cloud-bigquery uses to create a
dataset and a day-partitioned table and to load DataFrames into it.

- datasets.insert / get, tables.insert / get (404 / 409 answered like BigQuery);
- jobs.insert by multipart upload (`/upload/bigquery/v2/projects/P/jobs?uploadType=multipart`)
  and by resumable upload (POST answered with a Location, then PUT of the bytes, in chunks with
  308 Resume Incomplete); the Parquet payload is decoded with pyarrow and checked against the
  table schema (types, REQUIRED, REPEATED), as BigQuery does;
- jobs.get: a load job is RUNNING when inserted and DONE at the first poll;
- partition semantics: `table$YYYYMMDD` takes only rows of that day ("Some rows belong to
  different partitions rather than destination partition") and WRITE_TRUNCATE replaces just that
  partition; WRITE_APPEND appends; without a decorator WRITE_TRUNCATE replaces the table.

Tables live in memory: `fake.rows("p.d.t")`, `fake.partition_counts("p.d.t")` for assertions.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import re
import threading
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional
from urllib.parse import parse_qs, urlparse

from testbed.fakes.server import LocalServer


class LoadRejected(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


def _arrow_matches(bq_type: str, mode: str, arrow_type) -> bool:
    import pyarrow as pa
    if mode == "REPEATED":
        if not (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)):
            return False
        arrow_type = arrow_type.value_type
    ok = {
        "INTEGER": pa.types.is_int64, "INT64": pa.types.is_int64,
        "FLOAT": pa.types.is_float64, "FLOAT64": pa.types.is_float64,
        "BOOLEAN": pa.types.is_boolean, "BOOL": pa.types.is_boolean,
        "STRING": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
        "DATE": pa.types.is_date32,
        # Parquet TIMESTAMP without a zone (isAdjustedToUTC=false) loads into DATETIME.
        "DATETIME": lambda t: pa.types.is_timestamp(t) and t.tz is None,
        "TIMESTAMP": pa.types.is_timestamp,
    }.get(bq_type)
    return bool(ok and ok(arrow_type))


class FakeBigQuery(LocalServer):
    def __init__(self):
        self.datasets: Dict[str, dict] = {}
        self.tables: Dict[str, dict] = {}          # "p.d.t" -> {"resource": ..., "rows": [...]}
        self.jobs: Dict[str, dict] = {}
        self.uploads: Dict[str, dict] = {}         # resumable sessions
        self.resumable_sessions = 0
        self.job_polls = 0
        self.lock = threading.Lock()
        self.load_requests: List[str] = []         # destination table ids of load jobs, in order
        self.fail_next_load: Optional[str] = None  # inject an errorResult message into the next load
        self.server: Optional[ThreadingHTTPServer] = None

    # ---- assertions helpers --------------------------------------------------------------------

    def rows(self, table_id: str) -> List[dict]:
        return list(self.tables[table_id]["rows"])

    def partition_counts(self, table_id: str) -> Dict[dt.date, int]:
        field = self.tables[table_id]["resource"]["timePartitioning"]["field"]
        out: Dict[dt.date, int] = {}
        for r in self.tables[table_id]["rows"]:
            out[r[field]] = out.get(r[field], 0) + 1
        return out

    # ---- server --------------------------------------------------------------------------------

    def start(self) -> "FakeBigQuery":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _send(self, status: int, obj=None, headers=None):
                raw = b"" if obj is None else json.dumps(obj, default=str).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                self._send(*fake.route("GET", self.path, self.headers, b""))

            def do_POST(self):
                self._send(*fake.route("POST", self.path, self.headers, self._body()))

            def do_PUT(self):
                self._send(*fake.route("PUT", self.path, self.headers, self._body()))

        self.serve(Handler)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- routing -------------------------------------------------------------------------------

    @staticmethod
    def _error(code: int, reason: str, message: str, status: str):
        return code, {"error": {"code": code, "message": message, "status": status,
                                "errors": [{"reason": reason, "message": message, "domain": "global"}]}}

    def route(self, method: str, path: str, headers, body: bytes):
        u = urlparse(path)
        q = parse_qs(u.query)
        p = u.path
        with self.lock:
            m = re.fullmatch(r"/bigquery/v2/projects/([^/]+)/datasets", p)
            if m and method == "POST":
                return self._insert_dataset(m[1], json.loads(body))
            m = re.fullmatch(r"/bigquery/v2/projects/([^/]+)/datasets/([^/]+)", p)
            if m and method == "GET":
                ds = self.datasets.get(f"{m[1]}.{m[2]}")
                if ds:
                    return 200, ds
                return self._error(404, "notFound", f"Not found: Dataset {m[1]}:{m[2]}", "NOT_FOUND")
            m = re.fullmatch(r"/bigquery/v2/projects/([^/]+)/datasets/([^/]+)/tables", p)
            if m and method == "POST":
                return self._insert_table(m[1], m[2], json.loads(body))
            m = re.fullmatch(r"/bigquery/v2/projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)", p)
            if m and method == "GET":
                t = self.tables.get(f"{m[1]}.{m[2]}.{m[3]}")
                return (200, self._table_resource(t)) if t else self._error(
                    404, "notFound", f"Not found: Table {m[1]}:{m[2]}.{m[3]}", "NOT_FOUND")
            m = re.fullmatch(r"/upload/bigquery/v2/projects/([^/]+)/jobs", p)
            if m and method == "POST" and q.get("uploadType") == ["multipart"]:
                config, data = self._split_multipart(headers, body)
                return self._insert_load_job(m[1], config, data)
            if m and method == "POST" and q.get("uploadType") == ["resumable"] and "upload_id" not in q:
                uid = uuid.uuid4().hex
                self.resumable_sessions += 1
                self.uploads[uid] = {"project": m[1], "config": json.loads(body), "data": bytearray()}
                loc = f"{self.url}/upload/bigquery/v2/projects/{m[1]}/jobs?uploadType=resumable&upload_id={uid}"
                return 200, None, {"Location": loc}
            if m and method == "PUT" and "upload_id" in q:
                return self._resumable_put(q["upload_id"][0], headers, body)
            m = re.fullmatch(r"/bigquery/v2/projects/([^/]+)/jobs/([^/]+)", p)
            if m and method == "GET":
                job = self.jobs.get(m[2])
                if not job:
                    return self._error(404, "notFound", f"Not found: Job {m[1]}:{m[2]}", "NOT_FOUND")
                self.job_polls += 1
                job["status"]["state"] = "DONE"   # RUNNING when inserted, DONE at the first poll
                return 200, job
        return self._error(404, "notFound", f"fake BigQuery has no {method} {p}", "NOT_FOUND")

    # ---- datasets and tables -------------------------------------------------------------------

    def _insert_dataset(self, project, res):
        ref = res["datasetReference"]
        key = f"{ref['projectId']}.{ref['datasetId']}"
        if key in self.datasets:
            return self._error(409, "duplicate", f"Already Exists: Dataset {ref['projectId']}:{ref['datasetId']}",
                               "ALREADY_EXISTS")
        res = dict(res, id=f"{ref['projectId']}:{ref['datasetId']}", kind="bigquery#dataset",
                   location=res.get("location") or "US")
        self.datasets[key] = res
        return 200, res

    def _insert_table(self, project, dataset, res):
        ref = res["tableReference"]
        key = f"{ref['projectId']}.{ref['datasetId']}.{ref['tableId']}"
        if f"{ref['projectId']}.{ref['datasetId']}" not in self.datasets:
            return self._error(404, "notFound", f"Not found: Dataset {ref['projectId']}:{ref['datasetId']}",
                               "NOT_FOUND")
        if key in self.tables:
            return self._error(409, "duplicate", f"Already Exists: Table {key}", "ALREADY_EXISTS")
        tp = res.get("timePartitioning")
        if tp:
            fields = {f["name"]: f for f in res.get("schema", {}).get("fields", [])}
            f = fields.get(tp.get("field"))
            if tp.get("field") and (f is None or f["type"] not in ("DATE", "TIMESTAMP", "DATETIME")):
                return self._error(400, "invalid", "The field specified for partitioning cannot be found in the "
                                                   f"schema or is not a date/time column: {tp.get('field')}",
                                   "INVALID_ARGUMENT")
        self.tables[key] = {"resource": dict(res, kind="bigquery#table", id=key.replace(".", ":", 1)), "rows": []}
        return 200, self._table_resource(self.tables[key])

    def _table_resource(self, t):
        return dict(t["resource"], numRows=str(len(t["rows"])))

    # ---- uploads -------------------------------------------------------------------------------

    @staticmethod
    def _split_multipart(headers, body: bytes):
        head = f"Content-Type: {headers['Content-Type']}\r\nMIME-Version: 1.0\r\n\r\n".encode()
        msg = BytesParser(policy=HTTP).parsebytes(head + body)
        parts = list(msg.iter_parts())
        config = json.loads(parts[0].get_payload(decode=True))
        return config, parts[1].get_payload(decode=True)

    def _resumable_put(self, uid, headers, body):
        up = self.uploads.get(uid)
        if up is None:
            return self._error(404, "notFound", "no such upload session", "NOT_FOUND")
        up["data"] += body
        rng = headers.get("Content-Range", "")
        m = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", rng.strip()) if rng else None
        total = m and m[3]
        if m and total == "*":
            return 308, None, {"Range": f"bytes=0-{len(up['data']) - 1}"}
        del self.uploads[uid]
        return self._insert_load_job(up["project"], up["config"], bytes(up["data"]))

    # ---- load jobs -----------------------------------------------------------------------------

    def _insert_load_job(self, project, job_res, data: bytes):
        ref = dict(job_res.get("jobReference") or {})
        job_id = ref.get("jobId") or uuid.uuid4().hex
        ref.update(projectId=project, jobId=job_id, location=ref.get("location") or "US")
        load = job_res["configuration"]["load"]
        dest = load["destinationTable"]
        self.load_requests.append(dest["tableId"])
        status = {"state": "RUNNING"}
        try:
            if self.fail_next_load:
                msg, self.fail_next_load = self.fail_next_load, None
                raise LoadRejected("backendError", msg)
            n = self._apply_load(load, data)
            stats = {"load": {"outputRows": str(n), "inputFiles": "1"}}
        except LoadRejected as e:
            status.update(errorResult={"reason": e.reason, "message": e.message},
                          errors=[{"reason": e.reason, "message": e.message}])
            stats = {}
        job = {"kind": "bigquery#job", "id": f"{project}:{ref['location']}.{job_id}", "jobReference": ref,
               "configuration": job_res["configuration"], "status": status,
               "statistics": dict(stats, creationTime="0", startTime="0")}
        self.jobs[job_id] = job
        return 200, job

    def _apply_load(self, load, data: bytes) -> int:
        import pyarrow.parquet as pq
        if load.get("sourceFormat") != "PARQUET":
            raise LoadRejected("invalid", f"fake supports PARQUET loads only, got {load.get('sourceFormat')}")
        dest = load["destinationTable"]
        table_id, _, decorator = dest["tableId"].partition("$")
        key = f"{dest['projectId']}.{dest['datasetId']}.{table_id}"
        t = self.tables.get(key)
        if t is None:
            if load.get("createDisposition", "CREATE_IF_NEEDED") != "CREATE_IF_NEEDED":
                raise LoadRejected("notFound", f"Not found: Table {key}")
            if "schema" not in load:
                raise LoadRejected("invalid", "No schema specified on job or table.")
            res = {"tableReference": {"projectId": dest["projectId"], "datasetId": dest["datasetId"],
                                      "tableId": table_id}, "schema": load["schema"]}
            if load.get("timePartitioning"):
                res["timePartitioning"] = load["timePartitioning"]
            code, out = self._insert_table(dest["projectId"], dest["datasetId"], res)
            if code != 200:
                raise LoadRejected("invalid", out["error"]["message"])
            t = self.tables[key]
        schema = t["resource"]["schema"]["fields"]
        try:
            arrow = pq.read_table(io.BytesIO(data))
        except Exception as e:
            raise LoadRejected("invalid", f"Error while reading data, error message: {e}") from None
        by_name = {f.name: f for f in arrow.schema}
        for f in schema:
            af = by_name.get(f["name"])
            mode = f.get("mode", "NULLABLE")
            if af is None:
                if mode == "REQUIRED":
                    raise LoadRejected("invalid", f"Required field {f['name']} is missing in the Parquet file")
                continue
            if not _arrow_matches(f["type"], mode, af.type):
                raise LoadRejected("invalid", f"Provided Schema does not match Table {key}. Field {f['name']} has "
                                              f"changed type from {f['type']} to {af.type}")
        extra = set(by_name) - {f["name"] for f in schema}
        if extra:
            raise LoadRejected("invalid", f"Provided Schema does not match Table {key}. Cannot add fields "
                                          f"(field: {sorted(extra)[0]})")
        rows = arrow.to_pylist()
        for f in schema:
            if f.get("mode") == "REQUIRED" and any(r.get(f["name"]) is None for r in rows):
                raise LoadRejected("invalid", f"Required field {f['name']} cannot be null")
        rows = [{f["name"]: r.get(f["name"], [] if f.get("mode") == "REPEATED" else None) for f in schema}
                for r in rows]
        tp = t["resource"].get("timePartitioning")
        disposition = load.get("writeDisposition", "WRITE_APPEND")
        if decorator:
            if not tp:
                raise LoadRejected("invalid", f"Cannot write to partition {decorator} of a non-partitioned table {key}")
            day = dt.datetime.strptime(decorator, "%Y%m%d").date()
            field = tp["field"]
            wrong = [r for r in rows if r[field] != day]
            if wrong:
                raise LoadRejected("invalid", f"Some rows belong to different partitions rather than destination "
                                              f"partition {decorator}")
            keep = [r for r in t["rows"] if r[field] != day]
            current = [r for r in t["rows"] if r[field] == day]
        else:
            keep, current = [], list(t["rows"])
        if disposition == "WRITE_TRUNCATE":
            t["rows"] = keep + rows
        elif disposition == "WRITE_APPEND":
            t["rows"] = keep + current + rows
        elif disposition == "WRITE_EMPTY":
            if current:
                raise LoadRejected("duplicate", f"Already Exists: Table {key}{'$' + decorator if decorator else ''}")
            t["rows"] = keep + rows
        else:
            raise LoadRejected("invalid", f"Invalid write disposition {disposition}")
        return len(rows)


def main() -> None:
    """python -m testbed.fakes.bigquery: serve until killed (benchmarks); prints the URL, and on
    SIGTERM the row count of every table."""
    import signal
    fake = FakeBigQuery().start()
    print(fake.url, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    done.wait()
    print(json.dumps({k: len(t["rows"]) for k, t in fake.tables.items()}), flush=True)


if __name__ == "__main__":
    main()
