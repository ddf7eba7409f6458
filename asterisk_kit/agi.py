"""The kit's AGI entry: `asterisk-kit-agi [--config=PATH] HANDLER [ARG ...]`, run by Asterisk.

Handlers are declared by name in the capabilities' descriptors (`agi_handlers`, "module:function",
imported only when called, so one handler's imports never slow another down). The core knows
nothing of what they do. A handler is
`fn(agi, cfg, args, log)`; whatever happens the script answers Asterisk and exits 0, and sets the
channel variable ASTERISK_KIT_AGI_STATUS to OK or FAILED so the dialplan can see a failure.
This path must stay light: no pandas, no google, no requests unless the handler needs it.
"""
from __future__ import annotations

import importlib
import io
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

STATUS_VAR = "ASTERISK_KIT_AGI_STATUS"


def handlers() -> Dict[str, str]:
    """name used in the dialplan -> "module:function", from the capabilities' descriptors."""
    from .capabilities import agi_handlers
    return agi_handlers()


def resolve(name: str) -> Callable:
    known = handlers()
    target = known.get(name)
    if target is None:
        raise LookupError(f"unknown AGI handler {name!r} (known: {', '.join(sorted(known)) or 'none'})")
    mod, _, fn = target.partition(":")
    return getattr(importlib.import_module(mod), fn)


def parse_argv(argv: List[str]):
    config = None
    rest = list(argv)
    if rest and rest[0].startswith("--config="):
        config = rest.pop(0).split("=", 1)[1]
    if not rest:
        raise SystemExit("usage: asterisk-kit-agi [--config=PATH] HANDLER [ARG ...]")
    return config, rest[0], rest[1:]


def run_handler(agi, name: str, args: List[str], context: Callable[[], Tuple[Any, Any]]) -> None:
    """Run handler NAME for one AGI request, classic or FastAGI. Never raises: a failure is logged,
    shown on the Asterisk console and reported in STATUS_VAR (OK / FAILED) for the dialplan.
    context() -> (cfg, log) is called inside the guard, so a broken config is reported the same way."""
    import logging
    log = logging.getLogger("asterisk_kit.agi")
    status = "FAILED"
    try:
        cfg, log = context()
        resolve(name)(agi, cfg, args, log)
        status = "OK"
    except Exception as e:  # never hurt the call: report, log, answer
        log.exception("AGI handler %s failed: %s", name, e)
        try:
            agi.verbose(f"asterisk-kit AGI {name} failed: {e}", 1)
        except Exception:
            pass
    try:
        agi.set_variable(STATUS_VAR, status)
    except Exception:
        pass  # the channel may be gone already (hangup handlers)


def main(argv: Optional[List[str]] = None) -> int:
    import os
    os.umask(0o027)  # as the CLI: nothing the kit creates is for other users
    config_path, name, args = parse_argv(sys.argv[1:] if argv is None else argv)
    from asterisk.agi import AGI  # pyst2; created in the main thread (it installs a SIGHUP handler)
    agi = AGI(stderr=io.StringIO())  # pyst2 writes debug text to stderr, which Asterisk would log

    def context():
        from .config import load
        from .logsetup import setup
        cfg = load(config_path)
        return cfg, setup(cfg, "agi", to_stderr=False, fallback=True)  # a log problem must not stop the hook

    run_handler(agi, name, args, context)
    return 0


if __name__ == "__main__":
    sys.exit(main())
