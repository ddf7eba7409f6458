"""Settings of the CoMagic export: its [comagic] section."""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

from ..configtypes import (
    Key,
    Section,
    choice,
    date_or_empty,
    float_range,
    http_url_or_empty,
    int_range,
    text,
    timezone,
    words,
)


def _comagic_validate(v: Dict[str, Any]) -> List[Tuple[str, str]]:
    out = []
    if not v["access_token"] and not (v["login"] and v["password"]):
        out.append(("login, password, access_token", "set login and password, or access_token (a permanent key)"))
    if not v["api_url"]:
        out.append(("api_url", "expected an http:// or https:// URL"))
    if v["destination"] == "bigquery":
        missing = [k for k in ("bigquery_project", "bigquery_dataset", "bigquery_table") if not v[k]]
        if missing:
            out.append((", ".join(missing), "required when destination = bigquery"))
    if "id" not in v["fields"] or "start_time" not in v["fields"]:
        out.append(("fields", "must include id and start_time (the day partition and the de-duplication need them)"))
    return out




SECTIONS: Dict[str, Section] = {
    "comagic": Section("CoMagic Data API call export (`asterisk-kit comagic export`) to BigQuery or a local DuckDB "
                       "file.", {
        "api_url": Key(http_url_or_empty, "https://dataapi.comagic.ru/v2.0",
                       "Data API endpoint (JSON-RPC 2.0); dataapi.uiscom.ru for UIS."),
        "login": Key(text, "", "CoMagic user login for login.user (or leave empty and set access_token).",
                     example="analytics"),
        "password": Key(text, "", "Password of that login. Better from ASTERISK_KIT_COMAGIC_PASSWORD.", secret=True,
                        example="change-me"),
        "access_token": Key(text, "", "Permanent API key made in the account; used instead of login/password. "
                                      "Better from ASTERISK_KIT_COMAGIC_ACCESS_TOKEN.", secret=True),
        "fields": Key(words, "id, visitor_id, person_id, start_time, finish_reason, is_lost, tags, campaign_name, "
                             "communication_number, contact_phone_number, talk_duration, clean_talk_duration, "
                             "virtual_phone_number, ua_client_id, ym_client_id, entrance_page, gclid, yclid, "
                             "visitor_type, visits_count, visitor_first_campaign_name, visitor_device, "
                             "site_domain_name, utm_source, utm_medium, utm_campaign, utm_content, eq_utm_source, "
                             "eq_utm_medium, eq_utm_campaign, attributes",
                      "get.calls_report fields to export (columns of the table); must include id and start_time."),
        "first_date": Key(date_or_empty, "", "Day of the first call (YYYY-MM-DD): the first incremental run starts "
                                              "there. Empty: start with yesterday.", example="2024-01-01"),
        "timezone": Key(timezone, "Europe/Moscow", "Time zone of the account: decides what `yesterday` is."),
        "destination": Key(choice("local", "bigquery"), "local",
                           "local (DuckDB file, no Google account needed) or bigquery."),
        "local_path": Key(text, "", "DuckDB file for destination = local (relative: inside data_dir). "
                                    "Empty: DATA_DIR/comagic.duckdb."),
        "bigquery_project": Key(text, "", "Google Cloud project of the table (destination = bigquery)."),
        "bigquery_dataset": Key(text, "", "Dataset of the table (created if missing)."),
        "bigquery_table": Key(text, "calls", "Table name (created day-partitioned on PARTITION_DATE if missing)."),
        "bigquery_location": Key(text, "",
                                 "Location for a dataset created by the kit, e.g. EU (empty: BigQuery's default)."),
        "credentials_file": Key(text, "", "Service account JSON file; empty: application default credentials "
                                          "(anonymous when bigquery_api_endpoint is set: tests and emulators only)."),
        "bigquery_api_endpoint": Key(http_url_or_empty, "",
                                     "Override of the BigQuery API address (tests, emulators); empty: Google's."),
        "chunk_days": Key(int_range(1, 89), "7", "Days per API request range (the API allows at most 3 months)."),
        "page_limit": Key(int_range(1, 10000), "10000", "Rows per page (the API's maximum is 10000)."),
        "max_rows_per_range": Key(int_range(1), "100000", "A range holding more rows than this is split in halves "
                                                          "(offset paging is said to stop near 110000)."),
        "request_timeout": Key(float_range(1), "120", "Seconds to wait for one API answer."),
        "max_rate_wait_seconds": Key(int_range(0, 86400), "300", "Longest wait for a rate-limit reset before the run "
                                                                  "gives up (it resumes on the next run)."),
    }, validate=_comagic_validate),
}
