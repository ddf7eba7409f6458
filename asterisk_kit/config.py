"""The kit's one ini file: schema, loading, validation and environment overrides.

Every section and key the kit understands is declared here, so `config check`, the example file
and the error messages all come from one place. Capabilities add their own section to SCHEMA.
Errors always name the file, the section, the key and what was expected.

Environment overrides: ASTERISK_KIT_<SECTION>_<KEY> (upper case, non-alphanumerics as `_`) replaces
the file's value, e.g. ASTERISK_KIT_ASTERISK_AMI_SECRET or ASTERISK_KIT_BEELINE_ACME_TOKEN for key
`token` of section `[beeline:acme]`. Meant for secrets that should not sit in the file.
"""
from __future__ import annotations

import configparser
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

DEFAULT_PATH = "/etc/asterisk-kit/asterisk-kit.ini"
ENV_CONFIG = "ASTERISK_KIT_CONFIG"
ENV_PREFIX = "ASTERISK_KIT_"


class ConfigError(Exception):
    """One or more problems in the config; str() lists them, one per line."""

    def __init__(self, problems: List[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class _Invalid(ValueError):
    """Raised by a type parser; its message says what was expected."""


# ---- value types -------------------------------------------------------------------------------

def _str(v: str) -> str:
    return v


def _nonempty(v: str) -> str:
    if not v.strip():
        raise _Invalid("a non-empty value")
    return v.strip()


def _int_range(lo: Optional[int] = None, hi: Optional[int] = None) -> Callable[[str], int]:
    def parse(v: str) -> int:
        desc = "an integer" + (f" from {lo}" if lo is not None else "") + (f" to {hi}" if hi is not None else "")
        try:
            n = int(v.strip())
        except ValueError:
            raise _Invalid(desc) from None
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            raise _Invalid(desc)
        return n
    parse.__doc__ = "integer"
    return parse


def _float_range(lo: float = 0.0) -> Callable[[str], float]:
    def parse(v: str) -> float:
        try:
            n = float(v.strip())
        except ValueError:
            raise _Invalid(f"a number >= {lo:g}") from None
        if n < lo:
            raise _Invalid(f"a number >= {lo:g}")
        return n
    return parse


_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


def _bool(v: str) -> bool:
    s = v.strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise _Invalid("yes or no")


def _choice(*options: str) -> Callable[[str], str]:
    def parse(v: str) -> str:
        s = v.strip()
        if s not in options:
            raise _Invalid("one of " + ", ".join(options))
        return s
    return parse


def _path(v: str) -> Path:
    s = v.strip()
    if not s:
        raise _Invalid("a path")
    return Path(s).expanduser()


def _list(v: str) -> List[str]:
    return [p.strip() for p in re.split(r"[,\s]+", v) if p.strip()]


def _hostports(v: str) -> List[str]:
    items = _list(v)
    if not items:
        raise _Invalid("one or more host:port")
    for it in items:
        host, _, port = it.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _Invalid("host:port entries separated by commas, e.g. 127.0.0.1:11211")
    return items


def _networks(v: str) -> List[Any]:
    nets = []
    for it in _list(v):
        try:
            nets.append(ipaddress.ip_network(it, strict=False))
        except ValueError:
            raise _Invalid("IP networks separated by commas, e.g. 192.168.1.0/24") from None
    return nets


def _hhmm(v: str) -> str:
    s = v.strip()
    m = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", s)
    if not m:
        raise _Invalid("a time HH:MM")
    return s


def _timezone(v: str) -> str:
    s = v.strip()
    if s in ("", "local"):
        return "local"
    try:
        from zoneinfo import ZoneInfo
        ZoneInfo(s)
    except Exception:
        raise _Invalid("a time zone name such as Europe/Moscow, or local") from None
    return s


def _loglevel(v: str) -> str:
    s = v.strip().upper()
    if s not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise _Invalid("one of DEBUG, INFO, WARNING, ERROR")
    return s


def _regex(v: str) -> str:
    try:
        re.compile(v)
    except re.error as e:
        raise _Invalid(f"a valid regular expression ({e})") from None
    return v


def _callerid(v: str) -> str:
    # It lands in call files: "Name" <digits> or digits only, so no `#`, `;` or line can slip in.
    s = v.strip()
    if s and not re.fullmatch(r'(?:"[A-Za-z0-9 ._\-А-Яа-яЁё]{0,40}" ?)?<[0-9]{1,20}>|[0-9]{1,20}', s):
        raise _Invalid('a caller id "Name" <digits> or digits (name: letters, digits, space . _ -)')
    return s


def _language(v: str) -> str:
    return _choice("ru", "en")(v)


def _date_or_empty(v: str) -> str:
    s = v.strip()
    if s:
        import datetime
        try:
            datetime.date.fromisoformat(s)
        except ValueError:
            raise _Invalid("a date YYYY-MM-DD, or empty") from None
    return s


def _http_url_or_empty(v: str) -> str:
    s = v.strip()
    if s and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", s):
        raise _Invalid("an http:// or https:// URL")
    return s.rstrip("/")


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


def _destination_url(v: str) -> str:
    # sftp://user@host:port/dir, ftp://user@host/dir, ftps://... (explicit TLS). The password is a
    # separate (secret) key so URLs can be logged; no query or fragment.
    from urllib.parse import urlsplit
    s = v.strip()
    try:
        u = urlsplit(s)
        port = u.port
    except ValueError:
        raise _Invalid("a URL sftp://user@host[:port]/dir, ftp://... or ftps://... (bad port)") from None
    if (u.scheme not in ("sftp", "ftp", "ftps") or not u.hostname or not u.username or u.password
            or u.query or u.fragment or re.search(r"[\s\x00-\x1f]", s)):
        raise _Invalid("a URL sftp://user@host[:port]/dir, ftp://user@host[:port]/dir or ftps://... "
                       "(user required; the password goes in the password key)")
    del port
    return s


def _record_id_or_empty(v: str) -> str:
    s = v.strip()
    if s and not s.isdigit():
        raise _Invalid("a record id (digits), or empty")
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


def _blf_patterns(v: str) -> List[str]:
    from .blf.states import PatternError, compile_patterns
    items = _list(v)
    try:
        compile_patterns(items)
    except PatternError as e:
        raise _Invalid(f"extensions, ranges 100-199 or patterns _1XX ({e})") from None
    return items


def _blf_groups(v: str) -> str:
    from .blf.states import PatternError, parse_groups
    try:
        parse_groups(v)
    except PatternError as e:
        raise _Invalid(f"groups `Title: 101-110, 120; Other title: _2XX` ({e})") from None
    return v


def _blf_names(v: str) -> str:
    from .blf.states import PatternError, parse_names
    try:
        parse_names(v)
    except PatternError as e:
        raise _Invalid(f"names `101: Name; 102: Other name` ({e})") from None
    return v


# ---- [nimbox] value types -----------------------------------------------------------------------

def _rewrite_rules(v: str) -> List[Tuple[str, str]]:
    """`REGEX => REPLACEMENT; REGEX => REPLACEMENT`: applied in order, each once (re.sub count=1)."""
    rules = []
    for part in v.split(";"):
        if not part.strip():
            continue
        pattern, sep, repl = part.partition("=>")
        pattern, repl = pattern.strip(), repl.strip()
        if not sep or not pattern:
            raise _Invalid("rules `REGEX => REPLACEMENT` separated by `;`, e.g. ^9(\\d{7,})$ => \\1; ^(\\d{7})$ => 495\\1")
        try:
            rx = re.compile(pattern)
            rx.sub(repl, "0" * 20, count=1)   # a bad group reference fails here, not at the first call
        except (re.error, IndexError) as e:
            raise _Invalid(f"rules `REGEX => REPLACEMENT` (rule {part.strip()!r}: {e})") from None
        if not re.fullmatch(r"[0-9+*#\\]*", re.sub(r"\\g<\w+>|\\\d+", "", repl)):
            raise _Invalid(f"rules whose replacement holds only digits, + * # and group references \\1 "
                           f"(rule {part.strip()!r})")
        rules.append((pattern, repl))
    return rules


URL_FIELDS = ("recordingfile", "year", "month", "day", "linkedid")


def _url_template(v: str) -> str:
    s = v.strip()
    if not s:
        return s
    if not re.fullmatch(r"https?://\S+", s):
        raise _Invalid("an http:// or https:// URL template, e.g. https://pbx.example.com/rec/{year}/{month}/{day}/{recordingfile}")
    for name in re.findall(r"\{([^{}]*)\}", s):
        if name not in URL_FIELDS:
            raise _Invalid(f"a URL template using only {{{'}, {'.join(URL_FIELDS)}}} (found {{{name}}})")
    if re.sub(r"\{[^{}]*\}", "", s).count("{") or re.sub(r"\{[^{}]*\}", "", s).count("}"):
        raise _Invalid("a URL template with balanced {placeholders}")
    return s


def _cron_schedule(v: str) -> str:
    s = " ".join(v.split())
    if s in ("", "off"):
        return ""
    if not re.fullmatch(r"(?:[0-9*/,\-]+ ){4}[0-9*/,\-A-Za-z]+", s):
        raise _Invalid("a cron schedule of five fields such as `15 * * * *`, or off")
    return s


def _fastagi_address(v: str) -> str:
    s = v.strip()
    if s and not re.fullmatch(r"127\.0\.0\.1:\d{1,5}|localhost:\d{1,5}", s):
        raise _Invalid("empty, or 127.0.0.1:PORT (the FastAGI server listens on the loopback only)")
    return s


def _nimbox_validate(v: Dict[str, Any]) -> List[Tuple[str, str]]:
    out = []
    if not v["url"]:
        out.append(("url", "expected the NiMbox address, e.g. https://crm.example.com"))
    if v["hook_timeout"] > 10:
        out.append(("hook_timeout", "at most 10 seconds: the hook runs while Asterisk tears the channel down"))
    return out


# ---- [dialer] value types: each lands in the dialplan as an application argument ---------------

_VAR = r"\$\{[A-Za-z_][A-Za-z0-9_]*\}"
# Tech/resource[&Tech/resource]: no `,` (Dial() argument separator), `;` (dialplan comment), parentheses,
# quotes, spaces or `$[`/`${FUNC(`: the value must stay one argument that means what it says.
_CHANNEL = rf"[A-Za-z][A-Za-z0-9]*/(?:[A-Za-z0-9_.@:+*/\-]|{_VAR})+"
_DIAL_TARGET = re.compile(rf"{_CHANNEL}(?:&{_CHANNEL})*")
_SOUND = re.compile(r"[A-Za-z0-9_./\-]+(?:&[A-Za-z0-9_./\-]+)*")
_DIAL_HELP = ("a dial string Tech/resource such as PJSIP/${NUMBER}@trunk or Local/100@from-internal (letters, "
              "digits, _ . @ : + * / -, ${VARIABLE}, several joined by &; no , ; ( ) quotes or spaces: Asterisk "
              "would split or cut the Dial() arguments there)")


def _dial_target(v: str) -> str:
    s = v.strip()
    if s and not _DIAL_TARGET.fullmatch(s):
        raise _Invalid(_DIAL_HELP)
    return s


def _dial_out(v: str) -> str:
    s = _dial_target(v)
    if "${NUMBER}" not in s:
        raise _Invalid(_DIAL_HELP + ", containing ${NUMBER} where the number dialled goes")
    return s


def _sound(v: str) -> str:
    s = v.strip()
    if not _SOUND.fullmatch(s):
        raise _Invalid("a sound name such as custom/avtoobzvon or an absolute path without extension (letters, "
                       "digits, _ . / -, several joined by &)")
    return s


# ---- schema ------------------------------------------------------------------------------------

@dataclass
class Key:
    parse: Callable[[str], Any]
    default: Optional[str]          # None = required when the section is present
    help: str
    secret: bool = False
    example: Optional[str] = None   # value shown in the example file when it differs from default


@dataclass
class Section:
    help: str
    keys: Dict[str, Key]
    required: bool = False          # must the file have it?
    multi: bool = False             # `[name:INSTANCE]` sections, any number of them
    example: bool = True            # shown in `config example`
    # Cross-key checks once every key parsed: validate(values) -> [(keys, problem)], e.g.
    # [("login, access_token", "set one of them")]; reported as "file: [section] keys: problem".
    validate: Optional[Callable[[Dict[str, Any]], List[Tuple[str, str]]]] = None


SCHEMA: Dict[str, Section] = {
    "general": Section("Where the kit keeps its own data (SQLite store, state, locks).", {
        "data_dir": Key(_path, "/var/lib/asterisk-kit", "Folder for the kit's SQLite store, job state and locks."),
        "timezone": Key(_timezone, "local", "Time zone of the PBX for schedules and reports: local or a name such as Europe/Moscow."),
    }),
    "log": Section("Logging: one file per job and day, e.g. dialer-2026-11-22.log.", {
        "dir": Key(_path, "/var/log/asterisk-kit", "Folder for the daily log files."),
        "level": Key(_loglevel, "INFO", "DEBUG, INFO, WARNING or ERROR."),
        "keep_days": Key(_int_range(1, 3650), "30", "Daily files older than this many days are deleted."),
    }),
    "asterisk": Section("The local Asterisk: AMI login, spool and config folders.", {
        "ami_host": Key(_nonempty, "127.0.0.1", "AMI host."),
        "ami_port": Key(_int_range(1, 65535), "5038", "AMI TCP port."),
        "ami_user": Key(_nonempty, None, "AMI user (manager.conf / manager_custom.conf).", example="asterisk-kit"),
        "ami_secret": Key(_nonempty, None, "AMI secret. Better from ASTERISK_KIT_ASTERISK_AMI_SECRET.", secret=True, example="change-me"),
        "ami_timeout": Key(_float_range(0.1), "5", "Seconds to wait for AMI to answer."),
        "spool_dir": Key(_path, "/var/spool/asterisk", "Asterisk spool (astspooldir); call files go to its outgoing/."),
        "etc_dir": Key(_path, "/etc/asterisk", "Asterisk config folder (astetcdir) where `install` puts the dialplan."),
        "run_user": Key(_str, "asterisk", "System user Asterisk runs as; files the kit hands to Asterisk are given to it when run as root."),
    }, required=True),
    "mysql": Section("FreePBX MySQL/MariaDB (CDR and user names). Leave the section out when there is none.", {
        "host": Key(_nonempty, "localhost", "Host; ignored when socket is set."),
        "port": Key(_int_range(1, 65535), "3306", "TCP port."),
        "socket": Key(_str, "", "Unix socket path, e.g. /var/run/mysqld/mysqld.sock (empty: use TCP)."),
        "user": Key(_nonempty, None, "User with SELECT on the CDR and FreePBX databases.", example="asterisk-kit"),
        "password": Key(_str, "", "Password. Better from ASTERISK_KIT_MYSQL_PASSWORD.", secret=True),
        "cdr_database": Key(_nonempty, "asteriskcdrdb", "Database of the cdr table."),
        "freepbx_database": Key(_nonempty, "asterisk", "FreePBX database (users table)."),
        "connect_timeout": Key(_int_range(1, 120), "5", "Seconds."),
    }),
    "memcached": Section("memcached servers for the BLF states.", {
        "servers": Key(_hostports, "127.0.0.1:11211", "host:port, comma-separated; several servers are hashed."),
        "prefix": Key(_nonempty, "asterisk-kit", "Key prefix, so several PBXs can share a memcached."),
        "timeout": Key(_float_range(0.05), "2", "Seconds."),
    }),
    "web": Section("The built-in web app (`asterisk-kit web`).", {
        "listen": Key(_nonempty, "127.0.0.1", "Address to listen on."),
        "port": Key(_int_range(1, 65535), "8080", "TCP port."),
        "language": Key(_language, "ru", "Default language of the pages: ru or en."),
        "session_hours": Key(_int_range(1, 24 * 90), "12", "A login lasts this many hours of inactivity."),
        "secure_cookies": Key(_bool, "no", "Mark cookies Secure (set yes when served over HTTPS by a proxy)."),
        "login_max_failures": Key(_int_range(1, 1000), "5", "Failed logins per user or address before a pause."),
        "login_lockout_seconds": Key(_int_range(1, 86400), "300", "Length of that pause."),
        "trusted_proxies": Key(_networks, "", "Reverse proxies (addresses or networks) whose X-Forwarded-For is "
                                              "believed for the client address; empty: none."),
    }),
    "blf": Section("BLF panel: `asterisk-kit blf run` (one AMI connection -> memcached) and the /blf page.", {
        "contexts": Key(_list, "ext-local", "Dialplan contexts whose hints are shown (FreePBX: ext-local)."),
        "include": Key(_blf_patterns, "", "Only these extensions (101, ranges 100-199, patterns _1XX); empty: all."),
        "exclude": Key(_blf_patterns, "", "Never these extensions (same forms)."),
        "groups": Key(_blf_groups, "", "Groups on the page, in this order: `Sales: 101-110, 120; Support: _2XX`. "
                                       "Extensions in no group are shown last.", example="Reception: 100-109; Sales: _2XX"),
        "names": Key(_blf_names, "", "Names from the config, `101: Olga; 102: Ivan`; they win over MySQL's."),
        "names_from_mysql": Key(_bool, "yes", "Read names from FreePBX's users table when [mysql] is configured."),
        "names_refresh_seconds": Key(_int_range(10, 86400), "300", "How often the names are read again."),
        "anonymous_networks": Key(_networks, "", "Networks allowed to view /blf without logging in (wall "
                                                 "screens), e.g. 192.168.1.50/32; empty: login required."),
        "heartbeat_seconds": Key(_float_range(0.2), "1", "The daemon writes its heartbeat this often."),
        "stale_seconds": Key(_float_range(1), "5", "The page shows `stale` when the heartbeat is older than this."),
        "ping_seconds": Key(_float_range(0.5), "2", "AMI Ping interval; no answer within [asterisk] ami_timeout "
                                                   "means the link is dead."),
        "resync_seconds": Key(_int_range(10, 86400), "60", "A fresh ExtensionStateList this often (a `dialplan reload` "
                                                           "that only adds hints sends no event)."),
        "reconnect_max_seconds": Key(_int_range(1, 3600), "30", "Longest pause between AMI reconnection attempts."),
        "max_viewers": Key(_int_range(1, 10000), "200", "Live (SSE) viewers served at once per web process; more "
                                                        "get 503 and retry."),
        "poll_ms": Key(_int_range(10, 5000), "50", "The web process checks memcached for a new version this often."),
    }),
    "dialer": Section("Autodialer (avtoobzvon): dialplan, call files and pacing.", {
        "dial_out": Key(_dial_out, "PJSIP/${NUMBER}@trunk",
                        "Dial string for the outside call; ${NUMBER} is replaced by the number dialled. "
                        "On FreePBX e.g. Local/${NUMBER}@from-internal to use the outbound routes."),
        "ring_seconds": Key(_int_range(1, 300), "40", "How long the callee's phone rings."),
        "sound": Key(_sound, "custom/avtoobzvon", "Sound played on plain calls (no extension, as Playback wants it)."),
        "ivr_prompt": Key(_sound, "custom/avtoobzvon-ivr", "Prompt played on IVR calls before reading one digit."),
        "ivr_wait_seconds": Key(_int_range(1, 60), "7", "Seconds to wait for the digit."),
        "connect_to": Key(_dial_target, "", "Dial string the callee is connected to when the pressed digit matches "
                                    "(e.g. Local/100@from-internal); empty: just hang up."),
        "callerid": Key(_callerid, "", "CallerID of the calls, e.g. \"Office\" <84951234567> (empty: the trunk's default).",
                        example='"Office" <84951234567>'),
        "max_retries": Key(_int_range(0, 10), "0", "Call file MaxRetries: extra attempts when the callee does not answer."),
        "retry_time": Key(_int_range(10, 86400), "300", "Call file RetryTime: seconds between attempts."),
        "wait_time": Key(_int_range(5, 300), "45", "Call file WaitTime: seconds Asterisk waits for the call to be answered."),
        "bundle": Key(_int_range(1, 1000), "10", "Call files handed to Asterisk per batch."),
        "timeout": Key(_int_range(0, 3600), "30", "Seconds of pause between batches."),
        "max_in_progress": Key(_int_range(1, 1000), "20", "Never more calls of the autodialer in progress than this "
                                                        "(counted in Asterisk before each batch)."),
        "grace_minutes": Key(_int_range(0, 1440), "30", "A scheduled run missed by more than this (PBX or cron down) "
                                                       "is not started late."),
        "number_pattern": Key(_regex, "8[0-9]{10}", "Accepted numbers after normalisation (digits only, whole "
                                                     "number); default: Russian 8XXXXXXXXXX."),
        "normalise_plus7": Key(_bool, "yes", "Rewrite +7XXXXXXXXXX and 7XXXXXXXXXX to 8XXXXXXXXXX before checking."),
        "templates_dir": Key(_str, "", "Folder with your own plain.call.j2 / ivr.call.j2 overriding the shipped "
                                       "call file templates (empty: the shipped ones)."),
        "result_wait_seconds": Key(_int_range(30, 86400), "600", "After the last batch, how long a run waits "
                                                                "for the outcomes of its calls before it closes "
                                                                "(counted once none of its call files is left "
                                                                "in outgoing/, so retries are always waited for)."),
        "stall_seconds": Key(_int_range(10, 86400), "120", "A run ends with an error when one of its call files "
                                                          "has been due this long and Asterisk has not picked it "
                                                          "up (pbx_spool not loaded, wrong spool_dir)."),
        "import_max_bytes": Key(_int_range(100_000, 500_000_000), "20000000", "Largest list accepted by an import "
                                                                              "through the page (pasted or uploaded), "
                                                                              "in bytes; the web app keeps request "
                                                                              "bodies up to this size in memory."),
    }),
    "comagic": Section("CoMagic Data API call export (`asterisk-kit comagic export`) to BigQuery or a local DuckDB file.", {
        "api_url": Key(_http_url_or_empty, "https://dataapi.comagic.ru/v2.0", "Data API endpoint (JSON-RPC 2.0); dataapi.uiscom.ru for UIS."),
        "login": Key(_str, "", "CoMagic user login for login.user (or leave empty and set access_token).", example="analytics"),
        "password": Key(_str, "", "Password of that login. Better from ASTERISK_KIT_COMAGIC_PASSWORD.", secret=True, example="change-me"),
        "access_token": Key(_str, "", "Permanent API key made in the account; used instead of login/password. "
                                      "Better from ASTERISK_KIT_COMAGIC_ACCESS_TOKEN.", secret=True),
        "fields": Key(_list, "id, visitor_id, person_id, start_time, finish_reason, is_lost, tags, campaign_name, "
                             "communication_number, contact_phone_number, talk_duration, clean_talk_duration, "
                             "virtual_phone_number, ua_client_id, ym_client_id, entrance_page, gclid, yclid, "
                             "visitor_type, visits_count, visitor_first_campaign_name, visitor_device, "
                             "site_domain_name, utm_source, utm_medium, utm_campaign, utm_content, eq_utm_source, "
                             "eq_utm_medium, eq_utm_campaign, attributes",
                      "get.calls_report fields to export (columns of the table); must include id and start_time."),
        "first_date": Key(_date_or_empty, "", "Day of the first call (YYYY-MM-DD): the first incremental run starts "
                                              "there. Empty: start with yesterday.", example="2024-01-01"),
        "timezone": Key(_timezone, "Europe/Moscow", "Time zone of the account: decides what `yesterday` is."),
        "destination": Key(_choice("local", "bigquery"), "local", "local (DuckDB file, no Google account needed) or bigquery."),
        "local_path": Key(_str, "", "DuckDB file for destination = local (relative: inside data_dir). Empty: DATA_DIR/comagic.duckdb."),
        "bigquery_project": Key(_str, "", "Google Cloud project of the table (destination = bigquery)."),
        "bigquery_dataset": Key(_str, "", "Dataset of the table (created if missing)."),
        "bigquery_table": Key(_str, "calls", "Table name (created day-partitioned on PARTITION_DATE if missing)."),
        "bigquery_location": Key(_str, "", "Location for a dataset created by the kit, e.g. EU (empty: BigQuery's default)."),
        "credentials_file": Key(_str, "", "Service account JSON file; empty: application default credentials "
                                          "(anonymous when bigquery_api_endpoint is set: tests and emulators only)."),
        "bigquery_api_endpoint": Key(_http_url_or_empty, "", "Override of the BigQuery API address (tests, emulators); empty: Google's."),
        "chunk_days": Key(_int_range(1, 89), "7", "Days per API request range (the API allows at most 3 months)."),
        "page_limit": Key(_int_range(1, 10000), "10000", "Rows per page (the API's maximum is 10000)."),
        "max_rows_per_range": Key(_int_range(1), "100000", "A range holding more rows than this is split in halves "
                                                          "(offset paging is said to stop near 110000)."),
        "request_timeout": Key(_float_range(1), "120", "Seconds to wait for one API answer."),
        "max_rate_wait_seconds": Key(_int_range(0, 86400), "300", "Longest wait for a rate-limit reset before the run "
                                                                  "gives up (it resumes on the next run)."),
    }, validate=_comagic_validate),
    "beeline": Section("Beeline cloud PBX recordings export (`asterisk-kit beeline sync`): mp3 + JSON per call "
                       "to the customer's FTP / FTPS / SFTP server. One [beeline:NAME] section per customer.", {
        "token": Key(_nonempty, None, "API token (X-MPBX-API-AUTH-TOKEN, a GUID from the Beeline account). "
                                      "Better from ASTERISK_KIT_BEELINE_<NAME>_TOKEN.", secret=True,
                     example="00000000-0000-0000-0000-000000000000"),
        "api_url": Key(_http_url_or_empty, "https://cloudpbx.beeline.ru/apis/portal",
                       "Portal API base URL (override for tests)."),
        "destination": Key(_destination_url, None, "Where the files go: sftp://user@host[:port]/dir, "
                                                   "ftp://user@host[:port]/dir or ftps://... (FTP with explicit TLS).",
                           example="sftp://records@files.example.ru:22/incoming"),
        "password": Key(_str, "", "Password of the destination login (FTP/FTPS; SFTP when no key_file). "
                                  "Better from ASTERISK_KIT_BEELINE_<NAME>_PASSWORD.", secret=True),
        "key_file": Key(_str, "", "SFTP: private key file (RSA, ECDSA or ed25519) for the login.",
                        example="/etc/asterisk-kit/beeline_id_ed25519"),
        "key_passphrase": Key(_str, "", "SFTP: passphrase of key_file, if any.", secret=True),
        "known_hosts": Key(_str, "", "SFTP: known_hosts file holding the server's host key (the key is "
                                     "always checked). Pin it with `ssh-keyscan -p PORT HOST >> FILE` and "
                                     "compare the fingerprint with the customer's. Empty: ~/.ssh/known_hosts "
                                     "of the user the job runs as.", example="/etc/asterisk-kit/known_hosts"),
        "tls_ca_file": Key(_str, "", "FTPS: CA certificate file to trust for the server's certificate (a private "
                                     "or self-signed one); empty: the system's CAs. The name is always checked."),
        "template": Key(_str, "", "Jinja template for the JSON file; empty: the shipped one (the old script's "
                                  "format: employeeId, direction, language, respondentNumber, dateTime)."),
        "timezone": Key(_timezone, "local", "Zone of dateTime in the JSON (the old script: the server's local time)."),
        "start_after_id": Key(_record_id_or_empty, "", "First run only: export records after this id "
                                                       "(empty: every record the API still holds)."),
        "limit": Key(_int_range(0), "0", "Records per run at most (0: no limit)."),
        "attempts": Key(_int_range(1, 1000), "5", "Runs that may fail on one record before it is skipped "
                                                  "(and listed by `asterisk-kit beeline skipped`)."),
        "retries": Key(_int_range(0, 20), "3", "Retries of one request or upload, with growing pauses."),
        "retry_pause": Key(_float_range(0), "2", "First pause between retries in seconds (doubles each time)."),
        "request_timeout": Key(_float_range(1), "60", "Seconds without an answer from the API before giving up."),
        "transfer_timeout": Key(_float_range(1), "60", "Seconds without progress on the destination before giving up."),
        "keep_failed": Key(_int_range(0, 1000), "10", "Local temp files of failed records kept for inspection "
                                                      "(the oldest beyond this are removed)."),
    }, multi=True, validate=_beeline_validate),
    "nimbox": Section("NiMbox CRM push: each call is sent when it hangs up (AGI hook), kept in an outbox when "
                      "NiMbox cannot be reached, and replicated from the CDR table (`asterisk-kit nimbox sync`).", {
        "url": Key(_http_url_or_empty, None, "NiMbox address; the kit calls URL/direct/items/phonecalls/create.",
                   example="https://crm.example.com"),
        "token": Key(_nonempty, None, "API token. Better from ASTERISK_KIT_NIMBOX_TOKEN.", secret=True, example="change-me"),
        "initiated_format": Key(_choice("local", "offset", "utc", "local-z"), "local",
                                "How the call start is sent (NiMbox does not document its zone): local = PBX local "
                                "time without suffix (2026-11-23T18:00:05); offset = local time with its UTC offset "
                                "(+03:00); utc = UTC with Z; local-z = local time labelled Z (the old Perl script; "
                                "keeps matching calls it already sent). The PBX zone is [general] timezone."),
        "destination_rules": Key(_rewrite_rules, "", "Rewriting of the called number, `REGEX => REPLACEMENT` rules "
                                 "separated by `;`, applied in order. The old script's behaviour: strip the "
                                 "outside-line prefix 9, then put the area code before 7-digit numbers.",
                                 example=r"^9(\d{7,})$ => \1; ^(\d{7})$ => 495\1"),
        "recording_url": Key(_url_template, "", "Link sent with each call; placeholders {recordingfile}, {year}, "
                             "{month}, {day} (FreePBX monitor layout YYYY/MM/DD, from the file name) and {linkedid}. "
                             "Empty: no link; calls without a recording get none.",
                             example="https://pbx.example.com/monitor/{year}/{month}/{day}/{recordingfile}"),
        "duration": Key(_choice("duration", "billsec"), "duration", "Which CDR length is sent: duration "
                        "(from the start, what the old script sent) or billsec (talk time)."),
        "min_destination_length": Key(_int_range(0, 40), "7", "Only calls whose CDR dst has at least this many "
                                      "characters are sent (the old script: 7, i.e. outside calls)."),
        "dispositions": Key(_list, "", "Only calls with these CDR dispositions (e.g. ANSWERED); empty: all."),
        "fastagi": Key(_fastagi_address, "", "HOST:PORT of `asterisk-kit fastagi` to run the hook through FastAGI "
                       "(busy PBXs: no process start per call); empty: classic AGI (asterisk-kit-agi)."),
        "hook_timeout": Key(_float_range(0.1), "1.5", "Seconds the hangup hook waits for NiMbox before it puts "
                            "the call in the outbox (the channel teardown waits for the hook)."),
        "timeout": Key(_float_range(0.5), "10", "Seconds per request for `nimbox sync`."),
        "concurrency": Key(_int_range(1, 64), "8", "Requests in flight at once during `nimbox sync`."),
        "incremental_hours": Key(_int_range(1, 24 * 31), "3", "`nimbox sync` reads the CDR of the last this many hours."),
        "full_days": Key(_int_range(1, 3660), "360", "`nimbox sync --full` reads the CDR of the last this many days."),
        "cron_incremental": Key(_cron_schedule, "15 * * * *", "cron schedule of the incremental sync (off: none)."),
        "cron_full": Key(_cron_schedule, "0 23 * * *", "cron schedule of the full sync (off: none)."),
    }, validate=_nimbox_validate),
}


# ---- the loaded config -------------------------------------------------------------------------

class Config:
    """Typed, validated settings. `cfg["asterisk"]["ami_port"]` -> int.

    `cfg.has("mysql")` tells whether an optional section is present; `cfg.instances("beeline")`
    lists the `[beeline:NAME]` sections as {NAME: values}.
    """

    placeholders: List[str] = []    # "file: [section] key: ..." where the example's placeholder is left

    def __init__(self, path: Optional[Path], values: Dict[str, Dict[str, Any]], present: Iterable[str]):
        self.path = path
        self._values = values
        self._present = set(present)

    def __getitem__(self, section: str) -> Dict[str, Any]:
        if section not in self._values:
            raise KeyError(f"{self.path}: section [{section}] is not configured")
        return self._values[section]

    def has(self, section: str) -> bool:
        return section in self._present

    def get(self, section: str, key: str, default: Any = None) -> Any:
        return self._values.get(section, {}).get(key, default)

    def get_section(self, section: str) -> Dict[str, Any]:
        """The section's values (defaults when the section is absent), {} for unknown names."""
        return self._values.get(section, {})

    def instances(self, kind: str) -> Dict[str, Dict[str, Any]]:
        out = {}
        for name, vals in self._values.items():
            if name.startswith(kind + ":"):
                out[name.split(":", 1)[1]] = vals
        return dict(sorted(out.items()))

    def sections(self) -> List[str]:
        return sorted(self._present)

    @property
    def data_dir(self) -> Path:
        return self._values["general"]["data_dir"]


def env_name(section: str, key: str) -> str:
    return ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", f"{section}_{key}").upper()


def resolve_path(explicit: Optional[str] = None) -> Path:
    return Path(explicit or os.environ.get(ENV_CONFIG) or DEFAULT_PATH)


def _schema_for(section_name: str) -> Optional[Section]:
    if section_name in SCHEMA and not SCHEMA[section_name].multi:
        return SCHEMA[section_name]
    kind, sep, inst = section_name.partition(":")
    if sep and kind in SCHEMA and SCHEMA[kind].multi and re.fullmatch(r"[A-Za-z0-9_.-]+", inst):
        return SCHEMA[kind]
    return None


def parse_text(text: str, path: Optional[Path], environ: Optional[Dict[str, str]] = None) -> Config:
    """Validate ini text against SCHEMA; raise ConfigError listing every problem."""
    environ = os.environ if environ is None else environ
    where = str(path) if path else "<config>"
    # `key = value   ; comment` as the docs write it: `;` or `#` after whitespace starts a comment.
    parser = configparser.ConfigParser(interpolation=None, default_section="__no_defaults__",
                                       strict=True, empty_lines_in_values=False,
                                       inline_comment_prefixes=(";", "#"))
    parser.optionxform = str  # keys are case-sensitive names; report them as written
    try:
        parser.read_string(text, source=where)
    except configparser.Error as e:
        raise ConfigError([f"{where}: not a valid ini file: {e}".replace("\n", " ")]) from None

    problems: List[str] = []
    placeholders: List[str] = []
    values: Dict[str, Dict[str, Any]] = {}
    present = set(parser.sections())

    for name in parser.sections():
        sch = _schema_for(name)
        if sch is None:
            known = ", ".join(f"[{k}:NAME]" if s.multi else f"[{k}]" for k, s in SCHEMA.items())
            problems.append(f"{where}: [{name}]: unknown section (known: {known})")
            continue
        for key in parser.options(name):
            if key not in sch.keys:
                problems.append(f"{where}: [{name}] {key}: unknown key (known: {', '.join(sch.keys)})")

    # Every single section gets its defaults, present or not; multi sections only as written.
    wanted = [n for n, s in SCHEMA.items() if not s.multi]
    wanted += [n for n in parser.sections() if ":" in n and _schema_for(n) is not None]
    for name in wanted:
        sch = _schema_for(name)
        assert sch is not None
        sec_present = name in present
        vals: Dict[str, Any] = {}
        if sch.required and not sec_present:
            problems.append(f"{where}: [{name}]: section missing ({sch.help})")
            continue
        for key, spec in sch.keys.items():
            env = env_name(name, key)
            raw = None
            origin = f"{where}: [{name}] {key}"
            if env in environ:
                raw = environ[env]
                origin = f"{where}: [{name}] {key} (from environment {env})"
            elif sec_present and parser.has_option(name, key):
                raw = parser.get(name, key)
            if raw is None:
                if spec.default is None:
                    if sec_present:
                        problems.append(f"{origin}: missing; expected {_expected(spec)}")
                    continue
                raw = spec.default
            if "\n" in raw or "\r" in raw:
                problems.append(f"{origin}: expected a single line, got several (an indented next line "
                                f"continues a value in ini files)")
                continue
            try:
                vals[key] = spec.parse(raw)
            except _Invalid as e:
                shown = "***" if spec.secret else raw
                problems.append(f"{origin}: expected {e}, got {shown!r}")
            found = _placeholder(raw)
            if found:
                placeholders.append(f"{origin}: still the example's placeholder {found!r}; put the real value "
                                    f"here or in the environment as {env}")
        if sch.validate and sec_present and len(vals) == len(sch.keys):
            for keys, problem in sch.validate(vals):
                problems.append(f"{where}: [{name}] {keys}: {problem}")
        values[name] = vals
    if problems:
        raise ConfigError(problems)
    cfg = Config(path, values, present)
    cfg.placeholders = placeholders
    return cfg


# What `config example` and the docs write where a real value belongs: `config check` refuses them.
_PLACEHOLDERS = (re.compile(r"change-?me", re.I), re.compile(r"^0{4,}(?:-0{4,})*$"),
                 re.compile(r"(?:^|[/@.])example\.(?:com|org|net|ru)\b", re.I))


def _placeholder(raw: str) -> Optional[str]:
    for rx in _PLACEHOLDERS:
        m = rx.search(raw.strip())
        if m:
            return m.group(0).lstrip("/@.")
    return None


def _expected(spec: Key) -> str:
    try:
        spec.parse("")
    except _Invalid as e:
        return str(e)
    return "a value"


def load(explicit: Optional[str] = None, environ: Optional[Dict[str, str]] = None) -> Config:
    path = resolve_path(explicit)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file not found (create it with `asterisk-kit config example > {path}`,"
                           f" or point --config / {ENV_CONFIG} at another file)"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"{path}: cannot read: {e}"]) from None
    return parse_text(text, path, environ)


def example_text() -> str:
    """The commented example file, generated from SCHEMA so it can never drift from the code."""
    lines = ["# asterisk-kit configuration: /etc/asterisk-kit/asterisk-kit.ini",
             "# Generated by `asterisk-kit config example`. Check it with `asterisk-kit config check`.",
             "# Any key can be overridden from the environment: ASTERISK_KIT_<SECTION>_<KEY>,",
             "# e.g. ASTERISK_KIT_ASTERISK_AMI_SECRET. Keep secrets there or keep this file mode 0640.",
             "# Optional sections (mysql, memcached, web, capabilities) may be left out or commented.", ""]
    for name, sch in SCHEMA.items():
        if not sch.example:
            continue
        header = f"[{name}:main]" if sch.multi else f"[{name}]"
        lines.append(f"# {sch.help}" + ("" if sch.required else " (optional section)"))
        if sch.multi:
            lines.append(f"# One [{name}:NAME] section per instance; NAME is letters, digits, _ . -")
        lines.append(header)
        for key, spec in sch.keys.items():
            lines.append(f"# {spec.help}" + ("" if spec.default is not None else " Required."))
            value = spec.example if spec.example is not None else (spec.default or "")
            lines.append(f"{key} = {value}")
        lines.append("")
    return "\n".join(lines)
