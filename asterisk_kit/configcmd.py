"""`asterisk-kit config check | example`."""
from __future__ import annotations

import sys

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
    if cfg.placeholders:    # the example's change-me / 0000… / example.com: valid syntax, not a working file
        print("configuration error:", file=sys.stderr)
        for line in cfg.placeholders:
            print("  " + line, file=sys.stderr)
        return 2
    print(f"{cfg.path}: ok ({', '.join('[' + s + ']' for s in cfg.sections())})")
    return 0


def example(ctx) -> int:
    sys.stdout.write(example_text())
    return 0
