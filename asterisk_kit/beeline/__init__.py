"""Beeline cloud PBX recordings -> mp3 + JSON on the customer's FTP / FTPS / SFTP server
(`asterisk-kit beeline sync`), one [beeline:NAME] section per customer.

Modules: api (portal API client, typed errors, streaming download), remote (FTP/FTPS/SFTP uploads
with temp name + size check + rename), render (the JSON template), sync (the job), cli.
"""
from __future__ import annotations

from typing import Iterator, Tuple

from ..capability import Capability, CronJob

CAPABILITY = Capability(
    name="beeline",
    summary="Beeline cloud PBX recordings -> mp3 + JSON on each customer's FTP / FTPS / SFTP server.",
    settings="asterisk_kit.beeline.settings",
    commands="asterisk_kit.beeline.cli",
    doctor="asterisk_kit.beeline:doctor_checks",
    status="asterisk_kit.beeline.status:part",
    cron=(CronJob("beeline sync", "Beeline recordings -> customers' FTP/SFTP (each customer locked on its own)",
                  schedule="*/15 * * * *"),),
)


def doctor_checks(cfg) -> Iterator[Tuple[str, bool, str]]:
    """Per customer: the token (one listing call) and the destination (connect, host key, write a
    probe file and remove it)."""
    from . import api
    from .remote import RemoteError, SftpUploader, make_uploader
    from .sync import get_cursor, open_store
    for name, c in cfg.instances("beeline").items():
        client = api.BeelineClient(c["api_url"], c["token"], timeout=min(c["request_timeout"], 20), retries=0)
        try:
            conn = open_store(cfg)
            try:
                cursor = get_cursor(conn, name, c)
            finally:
                conn.close()
            n = len(client.records_after(cursor))
            yield f"beeline {name} api", True, f"token accepted by {c['api_url']}; {n} new record(s) on the first page"
        except api.BeelineError as e:
            yield f"beeline {name} api", False, str(e)
        finally:
            client.close()
        up = make_uploader(dict(c, transfer_timeout=min(c["transfer_timeout"], 20)))
        try:
            detail = up.probe()
            if isinstance(up, SftpUploader):
                detail += f"; host key found in {up.known_hosts_path()}"
            yield f"beeline {name} destination", True, detail
        except (RemoteError, OSError) as e:
            yield f"beeline {name} destination", False, str(e)
        finally:
            up.close()
