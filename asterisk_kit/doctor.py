"""`asterisk-kit doctor`: try every configured integration and say, one line each, what works.

Core checks live here; each capability contributes a generator of (name, ok, detail) through its
descriptor (`doctor`), run only when its section is configured.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterator, List, Tuple

Check = Tuple[str, bool, str]


def register(sub) -> None:
    p = sub.add_parser("doctor", help="check every configured integration, one line each")
    p.set_defaults(func=run)


def _writable_dir(path: Path) -> Tuple[bool, str]:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
            pass
        return True, f"{path} is writable"
    except OSError as e:
        return False, f"{path}: {e.strerror or e}"


def check_dirs(cfg) -> Iterator[Check]:
    ok, why = _writable_dir(Path(cfg.data_dir))
    yield "data dir", ok, why
    ok, why = _writable_dir(Path(cfg["log"]["dir"]))
    yield "log dir", ok, why


def check_ami(cfg) -> Iterator[Check]:
    """Each AMI role in use (default user, [dialer], [blf]) tries its own actions; a refusal names the class."""
    from .amiroles import doctor_checks
    yield from doctor_checks(cfg)


def check_spool(cfg) -> Iterator[Check]:
    spool = Path(cfg["asterisk"]["spool_dir"])
    out, tmp = spool / "outgoing", spool / "tmp"
    problems: List[str] = []
    for d in (out, tmp):
        if not d.is_dir():
            problems.append(f"{d} does not exist")
        elif not os.access(d, os.W_OK | os.X_OK):
            problems.append(f"{d} is not writable by this user")
    if not problems and out.stat().st_dev != tmp.stat().st_dev:
        problems.append(f"{tmp} and {out} are on different filesystems (call files must be renamed, not copied)")
    yield "spool", not problems, "; ".join(problems) or f"{out} writable, staging in {tmp}"


def check_mysql(cfg) -> Iterator[Check]:
    m = cfg["mysql"]
    try:
        from . import mysql
        conn = mysql.connect(m, m["cdr_database"])
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM cdr WHERE calldate >= NOW() - INTERVAL 1 DAY")
                n = cur.fetchone()[0]
        finally:
            conn.close()
        yield "mysql", True, f"connected as {m['user']}; {m['cdr_database']}.cdr readable ({n} calls in 24 h)"
    except Exception as e:
        yield "mysql", False, f"{type(e).__name__}: {e}"


def check_memcached(cfg) -> Iterator[Check]:
    from .memcache import client_from_config
    try:
        mc = client_from_config(cfg, ignore_exc=False)
        key = "doctor-probe"
        mc.set(key, b"1", expire=10)
        ok = mc.get(key) == b"1"
        mc.close()
        yield "memcached", ok, (f"set/get on {', '.join(cfg['memcached']['servers'])} ok" if ok
                                else "set/get round trip returned another value")
    except Exception as e:
        yield "memcached", False, f"{', '.join(cfg['memcached']['servers'])}: {type(e).__name__}: {e}"


def all_checks(cfg) -> Iterator[Check]:
    yield from check_dirs(cfg)
    yield from check_ami(cfg)
    yield from check_spool(cfg)
    if cfg.has("mysql"):
        yield from check_mysql(cfg)
    if cfg.has("memcached"):
        yield from check_memcached(cfg)
    from .web.server import doctor_checks as web_checks
    yield from web_checks(cfg)
    from .capabilities import configured, resolve
    for cap in configured(cfg):
        if cap.doctor:
            try:
                yield from resolve(cap.doctor)(cfg)
            except Exception as e:  # a broken check must not hide the others
                yield cap.name, False, f"check crashed: {type(e).__name__}: {e}"


def run(ctx) -> int:
    cfg = ctx.cfg
    failed = 0
    for name, ok, detail in all_checks(cfg):
        print(f"{'ok' if ok else 'FAILED':<7} {name}: {detail}", flush=True)
        failed += not ok
    print(f"{failed} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0
