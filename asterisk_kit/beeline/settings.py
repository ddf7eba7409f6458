"""Settings of the Beeline recordings export: one [beeline:NAME] section per customer."""
from __future__ import annotations

import re
from typing import Any, Dict, List, Tuple

from ..configtypes import (
    Invalid,
    Key,
    Section,
    float_range,
    http_url_or_empty,
    int_range,
    nonempty,
    text,
    timezone,
)


def _destination_url(v: str) -> str:
    # sftp://user@host:port/dir, ftp://user@host/dir, ftps://... (explicit TLS). The password is a
    # separate (secret) key so URLs can be logged; no query or fragment.
    from urllib.parse import urlsplit
    s = v.strip()
    try:
        u = urlsplit(s)
        port = u.port
    except ValueError:
        raise Invalid("a URL sftp://user@host[:port]/dir, ftp://... or ftps://... (bad port)") from None
    if (u.scheme not in ("sftp", "ftp", "ftps") or not u.hostname or not u.username or u.password
            or u.query or u.fragment or re.search(r"[\s\x00-\x1f]", s)):
        raise Invalid("a URL sftp://user@host[:port]/dir, ftp://user@host[:port]/dir or ftps://... "
                       "(user required; the password goes in the password key)")
    del port
    return s


def _record_id_or_empty(v: str) -> str:
    s = v.strip()
    if s and not s.isdigit():
        raise Invalid("a record id (digits), or empty")
    return s


def _beeline_validate(v: Dict[str, Any]) -> List[Tuple[str, str]]:
    out = []
    if not v["api_url"]:
        out.append(("api_url", "expected an http:// or https:// URL"))
    scheme = v["destination"].split(":", 1)[0]
    if scheme in ("ftp", "ftps") and not v["password"]:
        out.append(("password", f"required for a {scheme}:// destination"))
    if scheme != "ftps" and v["tls_ca_file"]:
        out.append(("tls_ca_file", "only used with an ftps:// destination"))
    if scheme != "sftp" and (v["key_file"] or v["known_hosts"]):
        out.append(("key_file, known_hosts", "only used with an sftp:// destination"))
    if scheme == "sftp" and not v["password"] and not v["key_file"]:
        out.append(("password, key_file", "set a password or a key_file for the sftp:// destination"))
    return out




SECTIONS: Dict[str, Section] = {
    "beeline": Section("Beeline cloud PBX recordings export (`asterisk-kit beeline sync`): mp3 + JSON per call "
                       "to the customer's FTP / FTPS / SFTP server. One [beeline:NAME] section per customer.", {
        "token": Key(nonempty, None, "API token (X-MPBX-API-AUTH-TOKEN, a GUID from the Beeline account). "
                                      "Better from ASTERISK_KIT_BEELINE_<NAME>_TOKEN.", secret=True,
                     example="00000000-0000-0000-0000-000000000000"),
        "api_url": Key(http_url_or_empty, "https://cloudpbx.beeline.ru/apis/portal",
                       "Portal API base URL (override for tests)."),
        "destination": Key(_destination_url, None, "Where the files go: sftp://user@host[:port]/dir, "
                                                   "ftp://user@host[:port]/dir or ftps://... (FTP with explicit TLS).",
                           example="sftp://records@files.example.ru:22/incoming"),
        "password": Key(text, "", "Password of the destination login (FTP/FTPS; SFTP when no key_file). "
                                  "Better from ASTERISK_KIT_BEELINE_<NAME>_PASSWORD.", secret=True),
        "key_file": Key(text, "", "SFTP: private key file (RSA, ECDSA or ed25519) for the login.",
                        example="/etc/asterisk-kit/beeline_id_ed25519"),
        "key_passphrase": Key(text, "", "SFTP: passphrase of key_file, if any.", secret=True),
        "known_hosts": Key(text, "", "SFTP: known_hosts file holding the server's host key (the key is "
                                     "always checked). Pin it with `ssh-keyscan -p PORT HOST >> FILE` and "
                                     "compare the fingerprint with the customer's. Empty: ~/.ssh/known_hosts "
                                     "of the user the job runs as.", example="/etc/asterisk-kit/known_hosts"),
        "tls_ca_file": Key(text, "", "FTPS: CA certificate file to trust for the server's certificate (a private "
                                     "or self-signed one); empty: the system's CAs. The name is always checked."),
        "template": Key(text, "", "Jinja template for the JSON file; empty: the shipped one (the old script's "
                                  "format: employeeId, direction, language, respondentNumber, dateTime)."),
        "timezone": Key(timezone, "local", "Zone of dateTime in the JSON (the old script: the server's local time)."),
        "start_after_id": Key(_record_id_or_empty, "", "First run only: export records after this id "
                                                       "(empty: every record the API still holds)."),
        "limit": Key(int_range(0), "0", "Records per run at most (0: no limit)."),
        "attempts": Key(int_range(1, 1000), "5", "Runs that may fail on one record before it is skipped "
                                                  "(and listed by `asterisk-kit beeline skipped`)."),
        "retries": Key(int_range(0, 20), "3", "Retries of one request or upload, with growing pauses."),
        "retry_pause": Key(float_range(0), "2", "First pause between retries in seconds (doubles each time)."),
        "request_timeout": Key(float_range(1), "60", "Seconds without an answer from the API before giving up."),
        "transfer_timeout": Key(float_range(1), "60", "Seconds without progress on the destination before giving up."),
        "keep_failed": Key(int_range(0, 1000), "10", "Local temp files of failed records kept for inspection "
                                                      "(the oldest beyond this are removed)."),
    }, multi=True, validate=_beeline_validate),
}
