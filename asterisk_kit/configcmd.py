"""`asterisk-kit config check | example`."""
from __future__ import annotations

import os
import stat
import sys
from typing import List

from .config import example_text


def register(sub) -> None:
    p = sub.add_parser("config", help="check the config file or print a commented example")
    s = p.add_subparsers(dest="config_cmd", metavar="ACTION")
    s.required = True
    c = s.add_parser("check", help="validate the config; every problem names file, section and key")
    c.set_defaults(func=check, needs_root=True)
    e = s.add_parser("example", help="print a commented example config")
    e.set_defaults(func=example, needs_root=True)


def check(ctx) -> int:
    cfg = ctx.cfg  # raises ConfigError, printed by main()
    for line in readable_warnings(cfg):
        print("warning: " + line, file=sys.stderr)
    if cfg.placeholders:    # the example's change-me / 0000… / example.com: valid syntax, not a working file
        print("configuration error:", file=sys.stderr)
        for line in cfg.placeholders:
            print("  " + line, file=sys.stderr)
        return 2
    dropins = [str(p) for p in cfg.files if p != cfg.path]
    print(f"{cfg.path}: ok ({', '.join('[' + s + ']' for s in cfg.sections())})"
          + (f"; drop-ins: {', '.join(dropins)}" if dropins else ""))
    return 0


def readable_warnings(cfg) -> List[str]:
    """The main file, and every drop-in holding a secret, must not be readable by everyone."""
    out = []
    for p in cfg.files:
        if p != cfg.path and p not in cfg.secret_files:
            continue
        try:
            mode = os.stat(p).st_mode
        except OSError:
            continue
        if mode & stat.S_IROTH:
            what = "holds secrets" if p in cfg.secret_files else "is the main config file"
            out.append(f"{p} {what} and is readable by every user (mode {stat.S_IMODE(mode):04o}): "
                       f"chmod o-r {p} (e.g. 0640, group of [asterisk] run_user)")
    return out


def example(ctx) -> int:
    sys.stdout.write(example_text())
    return 0
