"""`asterisk-kit doctor`: try every configured integration and say, one line each, what works.

Core checks live here; each capability contributes `doctor_checks(cfg)` (a generator of
(name, ok, detail)) listed in CAPABILITY_CHECKS and run only when its section is configured.
"""
from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Tuple

Check = Tuple[str, bool, str]

# section name (or multi-section kind) -> "module:function"
CAPABILITY_CHECKS = {
    "beeline": "asterisk_kit.beeline:doctor_checks",
    "comagic": "asterisk_kit.comagic:doctor_checks",
    "dialer": "asterisk_kit.dialer:doctor_checks",
    "blf": "asterisk_kit.blf:doctor_checks",
    "nimbox": "asterisk_kit.nimbox:doctor_checks",
}


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
    from .ami import AmiClient, AmiError
    a = cfg["asterisk"]
    try:
        with AmiClient.from_config(cfg) as ami:
            settings = ami.action("CoreSettings")
            version = settings.get("AsteriskVersion", "?")
        yield "ami", True, f"logged in as {a['ami_user']} at {a['ami_host']}:{a['ami_port']} (Asterisk {version})"
    except AmiError as e:
        yield "ami", False, str(e)


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
    for section, target in CAPABILITY_CHECKS.items():
        if cfg.has(section) or cfg.instances(section):
            mod, _, fn = target.partition(":")
            try:
                yield from getattr(importlib.import_module(mod), fn)(cfg)
            except Exception as e:  # a broken check must not hide the others
                yield section, False, f"check crashed: {type(e).__name__}: {e}"


def run(ctx) -> int:
    cfg = ctx.cfg
    failed = 0
    for name, ok, detail in all_checks(cfg):
        print(f"{'ok' if ok else 'FAILED':<7} {name}: {detail}", flush=True)
        failed += not ok
    print(f"{failed} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0
