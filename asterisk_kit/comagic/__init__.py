"""CoMagic Data API -> BigQuery / local DuckDB call export (`asterisk-kit comagic export`).

Modules: api (JSON-RPC client, typed errors, limits, paging), transform (typed DataFrame and the
table definition), destinations (per-day replace in DuckDB or BigQuery), export (the job), cli.
Only `api` (requests) is light; the rest import pandas/pyarrow/duckdb/google inside functions.
"""
from __future__ import annotations

from typing import Iterator, Tuple

from ..capability import Capability, CronJob

CAPABILITY = Capability(
    name="comagic",
    summary="CoMagic Data API calls -> BigQuery or a local DuckDB file, day by day.",
    settings="asterisk_kit.comagic.settings",
    commands="asterisk_kit.comagic.cli",
    doctor="asterisk_kit.comagic:doctor_checks",
    status="asterisk_kit.comagic.status:part",
    # hourly: loads yesterday once it is over, and resumes a run that stopped early
    cron=(CronJob("comagic export", "CoMagic calls -> warehouse, day by day up to yesterday", schedule="40 * * * *"),),
)


def doctor_checks(cfg) -> Iterator[Tuple[str, bool, str]]:
    """One cheap API call: login.user, or with a permanent key a one-row calls report."""
    import datetime as dt

    from .api import ComagicClient, ComagicError
    c = cfg["comagic"]
    client = ComagicClient(c["api_url"], login=c["login"], password=c["password"],
                           access_token=c["access_token"], timeout=min(c["request_timeout"], 20),
                           retries=0, max_rate_wait=0)
    try:
        if c["access_token"]:
            t = dt.datetime.combine(dt.date.today(), dt.time())
            client.calls_page(t - dt.timedelta(minutes=1), t, ["id"], 1, 0)
            yield "comagic", True, f"permanent access_token accepted by {c['api_url']}"
        else:
            client.login()
            yield "comagic", True, f"logged in to {c['api_url']} as {c['login']}"
    except ComagicError as e:
        yield "comagic", False, str(e)
    finally:
        client.close()
    if c["destination"] == "bigquery":
        yield _check_bigquery(cfg)
    else:
        yield _check_local(cfg)


def _check_local(cfg) -> Tuple[str, bool, str]:
    """The analytics libraries import, and the DuckDB file's folder is writable."""
    import os

    from .destinations import local_path
    path = local_path(cfg)
    try:
        import duckdb  # noqa: F401
        import pandas  # noqa: F401
    except ImportError as e:
        return "comagic destination", False, (f"local DuckDB {path}: {e}; install the analytics extra: "
                                              f"pip install 'asterisk-kit[analytics]'")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        return "comagic destination", False, f"local DuckDB {path}: {folder} is not writable by this user"
    return "comagic destination", True, f"local DuckDB {path}"


def _check_bigquery(cfg) -> Tuple[str, bool, str]:
    """Credentials and the dataset, read-only (the export creates what is missing)."""
    c = cfg["comagic"]
    table = f"{c['bigquery_project']}.{c['bigquery_dataset']}.{c['bigquery_table']}"
    try:
        from google.api_core import exceptions as gexc
        from google.cloud.bigquery import DEFAULT_RETRY

        from .destinations import DestinationError, make_client
    except ImportError as e:
        return "comagic destination", False, f"{e}; install with: pip install 'asterisk-kit[analytics]'"
    retry = DEFAULT_RETRY.with_timeout(8)  # a doctor line, not a ten-minute wait
    try:
        client = make_client(cfg)
        try:
            client.get_table(table, timeout=10, retry=retry)
            return "comagic destination", True, f"BigQuery table {table} readable"
        except gexc.NotFound:
            client.get_dataset(f"{c['bigquery_project']}.{c['bigquery_dataset']}", timeout=10, retry=retry)
            return "comagic destination", True, f"BigQuery dataset readable; table {table} will be created"
        finally:
            client.close()
    except gexc.NotFound:
        return "comagic destination", True, f"BigQuery dataset of {table} will be created"
    except (DestinationError, gexc.GoogleAPIError) as e:
        return "comagic destination", False, f"BigQuery {table}: {e}"
    except Exception as e:  # auth and transport errors of the google libraries
        return "comagic destination", False, f"BigQuery {table}: {type(e).__name__}: {e}"
