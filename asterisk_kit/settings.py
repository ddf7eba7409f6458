"""The core's own config sections ([general], [log], [asterisk], [mysql], [memcached], [web]) and
typed views of the ones every process reads: `cfg.general.data_dir`, `cfg.asterisk.ami_port`.

The capabilities' sections live in their own packages (asterisk_kit/NAME/settings.py).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Tuple, Type, TypeVar

from .configtypes import (
    Key,
    Section,
    float_range,
    hostports,
    int_range,
    language,
    loglevel,
    networks,
    nonempty,
    path,
    text,
    timezone,
    words,
    yes_no,
)


def _web_validate(v: Dict[str, Any]) -> List[Tuple[str, str]]:
    if bool(v.get("tls_cert")) != bool(v.get("tls_key")):
        return [("tls_cert, tls_key", "set both (HTTPS) or neither (plain HTTP)")]
    return []


SECTIONS: Dict[str, Section] = {
    "general": Section("Where the kit keeps its own data (SQLite store, state, locks).", {
        "data_dir": Key(path, "/var/lib/asterisk-kit", "Folder for the kit's SQLite store, job state and locks."),
        "timezone": Key(timezone, "local",
                        "Time zone of the PBX for schedules and reports: local or a name such as Europe/Moscow."),
    }),
    "log": Section("Logging: one file per job and day, e.g. dialer-2026-11-22.log.", {
        "dir": Key(path, "/var/log/asterisk-kit", "Folder for the daily log files."),
        "level": Key(loglevel, "INFO", "DEBUG, INFO, WARNING or ERROR."),
        "keep_days": Key(int_range(1, 3650), "30", "Daily files older than this many days are deleted."),
        "syslog": Key(text, "/dev/log", "Syslog socket for what must not be lost when the log folder cannot be "
                                        "written (empty: none). Cron lines send job output to syslog with logger."),
    }),
    "asterisk": Section("The local Asterisk: AMI login, spool and config folders.", {
        "ami_host": Key(nonempty, "127.0.0.1", "AMI host."),
        "ami_port": Key(int_range(1, 65535), "5038", "AMI TCP port."),
        "ami_user": Key(nonempty, None, "AMI user (manager.conf / manager_custom.conf).", example="asterisk-kit"),
        "ami_secret": Key(nonempty, None, "AMI secret. Better from ASTERISK_KIT_ASTERISK_AMI_SECRET.", secret=True,
                          example="change-me"),
        "ami_timeout": Key(float_range(0.1), "5", "Seconds to wait for AMI to answer."),
        "spool_dir": Key(path, "/var/spool/asterisk", "Asterisk spool (astspooldir); call files go to its outgoing/."),
        "etc_dir": Key(path, "/etc/asterisk", "Asterisk config folder (astetcdir) where `install` puts the dialplan."),
        "run_user": Key(text, "asterisk", "System user Asterisk runs as; files the kit hands to Asterisk are given "
                                          "to it when run as root."),
    }, required=True),
    "mysql": Section("FreePBX MySQL/MariaDB (CDR and user names). Leave the section out when there is none.", {
        "host": Key(nonempty, "localhost", "Host; ignored when socket is set."),
        "port": Key(int_range(1, 65535), "3306", "TCP port."),
        "socket": Key(text, "", "Unix socket path, e.g. /var/run/mysqld/mysqld.sock (empty: use TCP)."),
        "user": Key(nonempty, None, "User with SELECT on the CDR and FreePBX databases.", example="asterisk-kit"),
        "password": Key(text, "", "Password. Better from ASTERISK_KIT_MYSQL_PASSWORD.", secret=True),
        "cdr_database": Key(nonempty, "asteriskcdrdb", "Database of the cdr table."),
        "freepbx_database": Key(nonempty, "asterisk", "FreePBX database (users table)."),
        "connect_timeout": Key(int_range(1, 120), "5", "Seconds."),
        "read_timeout": Key(int_range(1, 3600), "120", "Seconds to wait for any answer of the server (its greeting, "
                            "a query's first row); a hung server fails the job instead of hanging it."),
        "write_timeout": Key(int_range(1, 3600), "30", "Seconds to wait while sending to the server."),
    }),
    "memcached": Section("memcached servers for the BLF states.", {
        "servers": Key(hostports, "127.0.0.1:11211", "host:port, comma-separated; several servers are hashed."),
        "prefix": Key(nonempty, "asterisk-kit", "Key prefix, so several PBXs can share a memcached."),
        "timeout": Key(float_range(0.05), "2", "Seconds."),
    }),
    "web": Section("The built-in web app (`asterisk-kit web`).", {
        "listen": Key(nonempty, "127.0.0.1", "Address to listen on."),
        "port": Key(int_range(1, 65535), "8080", "TCP port."),
        "language": Key(language, "ru", "Default language of the pages: ru or en."),
        "session_hours": Key(int_range(1, 24 * 90), "12", "A login lasts this many hours of inactivity."),
        "session_max_hours": Key(int_range(1, 24 * 365), "168", "A login ends this many hours after it began, "
                                                                "however active."),
        "secure_cookies": Key(yes_no, "no", "Mark cookies Secure (set yes when served over HTTPS by a proxy; "
                                            "always on with tls_cert)."),
        "login_max_failures": Key(int_range(1, 1000), "5", "Failed logins for one user name from one address "
                                                           "before a pause."),
        "login_max_failures_per_address": Key(int_range(1, 100000), "30", "Failed logins from one address, "
                                                                          "whatever the user name, before a pause."),
        "login_lockout_seconds": Key(int_range(1, 86400), "300", "Length of that pause."),
        "password_checks": Key(int_range(1, 64), "2", "Password hashes computed at once (each takes ~128 MB); "
                                                      "more logins wait."),
        "trusted_proxies": Key(networks, "", "Reverse proxies (addresses or networks) whose X-Forwarded-For is "
                                             "believed for the client address; empty: none."),
        "admins": Key(words, "", "Logins that may see the /status page (jobs, outbox, BLF link); empty: nobody."),
        "threads": Key(int_range(2, 1000), "16", "Server threads for pages and forms; the live BLF viewers get "
                                                 "[blf] max_viewers threads on top."),
        "backlog": Key(int_range(16, 65535), "1024", "Listen backlog: connections the kernel queues in a burst "
                                                     "(capped by net.core.somaxconn)."),
        "read_timeout_seconds": Key(int_range(1, 600), "10", "A client must send its request (headers and "
                                                             "body) within this; idle keep-alive connections "
                                                             "close after it."),
        "max_header_kb": Key(int_range(4, 1024), "32", "Largest request head (request line plus headers); more: 413."),
        "max_body_mb": Key(int_range(1, 1024), "20", "Largest request body of a logged-in user (phone list "
                                                     "uploads); more: 413, refused before it is read."),
        "anonymous_body_kb": Key(int_range(1, 1024), "16", "Largest request body without a login (the login "
                                                           "form); more: 413, refused before it is read."),
        "tls_cert": Key(text, "", "HTTPS: certificate file (PEM, chain after the certificate); empty: plain HTTP. "
                                  "FreePBX: /etc/asterisk/keys/integration/certificate.pem."),
        "tls_key": Key(text, "", "HTTPS: private key file (PEM) of tls_cert. "
                                 "FreePBX: /etc/asterisk/keys/integration/webserver.key."),
    }, validate=_web_validate),
    "alerts": Section("E-mail alerts from `asterisk-kit alerts check` (cron, every 5 minutes): one mail per "
                      "incident and one when it is over.", {
        "mail_to": Key(words, None, "Addresses to alert, comma-separated.", example="admin@example.com"),
        "mail_from": Key(nonempty, "asterisk-kit@localhost", "Sender address."),
        "smtp_host": Key(text, "", "SMTP server; empty: hand the mail to the local sendmail."),
        "smtp_port": Key(int_range(1, 65535), "25", "SMTP port."),
        "smtp_starttls": Key(yes_no, "no", "Use STARTTLS on the SMTP connection."),
        "smtp_user": Key(text, "", "SMTP login, if the server wants one."),
        "smtp_password": Key(text, "", "SMTP password. Better from ASTERISK_KIT_ALERTS_SMTP_PASSWORD.", secret=True),
        "sendmail": Key(path, "/usr/sbin/sendmail", "Local sendmail used when smtp_host is empty."),
        "failed_runs": Key(int_range(1, 1000), "3", "Alert when a job failed this many runs in a row."),
        "outbox_backlog": Key(int_range(1, 10_000_000), "100", "Alert when the NiMbox outbox holds more calls."),
        "blf_down_minutes": Key(float_range(0.0), "5", "Alert when the BLF daemon has had no AMI link "
                                                        "(or has not run) for this many minutes."),
    }),
}


# ---- typed views -------------------------------------------------------------------------------
# Field names and types mirror the keys above; test_config checks they stay in step.

V = TypeVar("V")


def view(cls: Type[V], values: Dict[str, Any]) -> V:
    return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class General:
    data_dir: Path
    timezone: str


@dataclass(frozen=True)
class Log:
    dir: Path
    level: str
    keep_days: int
    syslog: str


@dataclass(frozen=True)
class Asterisk:
    ami_host: str
    ami_port: int
    ami_user: str
    ami_secret: str
    ami_timeout: float
    spool_dir: Path
    etc_dir: Path
    run_user: str


@dataclass(frozen=True)
class Web:
    listen: str
    port: int
    language: str
    session_hours: int
    session_max_hours: int
    secure_cookies: bool
    login_max_failures: int
    login_max_failures_per_address: int
    login_lockout_seconds: int
    password_checks: int
    trusted_proxies: List[Any]
    admins: List[str]
    threads: int
    backlog: int
    read_timeout_seconds: int
    max_header_kb: int
    max_body_mb: int
    anonymous_body_kb: int
    tls_cert: str
    tls_key: str


VIEWS: Dict[str, type] = {"general": General, "log": Log, "asterisk": Asterisk, "web": Web}
