"""`asterisk-kit web` (serve the pages) and `asterisk-kit user add|passwd|list|delete|set|show|audit`."""
from __future__ import annotations

import getpass
import sys
import time


def register(sub) -> None:
    p = sub.add_parser("web", help="serve the web pages (login, autodialer, BLF)")
    p.add_argument("--listen", metavar="ADDR", help="address to listen on (default: [web] listen)")
    p.add_argument("--port", type=int, help="TCP port (default: [web] port)")
    p.set_defaults(func=cmd_web)

    u = sub.add_parser("user", help="manage web logins")
    u.set_defaults(needs_root=True)    # run by the admin as root; gives the store to the run user after
    us = u.add_subparsers(dest="user_command", metavar="ACTION")
    us.required = True
    for name, fn, hlp in (("add", cmd_add, "create a login"), ("passwd", cmd_passwd, "set a new password")):
        a = us.add_parser(name, help=hlp)
        a.add_argument("name")
        a.add_argument("--password-stdin", action="store_true",
                       help="read the password from the first line of stdin (scripts) instead of asking")
        a.set_defaults(func=fn)
    a = us.add_parser("delete", help="remove a login (its sessions end)")
    a.add_argument("name")
    a.set_defaults(func=cmd_delete)
    a = us.add_parser("list", help="list logins")
    a.set_defaults(func=cmd_list)
    a = us.add_parser("set", help="own extension, permissions and BLF groups of a login")
    a.add_argument("name")
    a.add_argument("--extension", metavar="EXT", help="the user's own extension (digits; empty: none)")
    a.add_argument("--allow", metavar="LIST", default="", help="permissions to add, comma-separated: "
                   "view,dial,transfer,pickup,hangup,queue,queue_others,numbers,admin")
    a.add_argument("--deny", metavar="LIST", default="", help="permissions to remove, comma-separated")
    a.add_argument("--only", metavar="LIST", help="exactly these permissions (replaces the set)")
    a.add_argument("--groups", metavar="LIST", help="BLF groups the user sees, comma-separated, or '*' for all")
    a.set_defaults(func=cmd_set)
    a = us.add_parser("show", help="a login's extension, permissions and groups")
    a.add_argument("name")
    a.set_defaults(func=cmd_show)
    a = us.add_parser("audit", help="the panel's action log, newest first")
    a.add_argument("--user", metavar="NAME", help="only this login")
    a.add_argument("--limit", type=int, default=50, metavar="N")
    a.set_defaults(func=cmd_audit)


def cmd_web(ctx) -> int:
    from .app import create_web, wsgi_app
    from .server import guard, make_server, serve
    log = ctx.logger("web")
    cfg, w = ctx.cfg, ctx.cfg["web"]
    web = create_web(cfg, log)
    app = guard(wsgi_app(web), anonymous_body=w["anonymous_body_kb"] * 1024, logged_in=web.has_login, log=log,
                tls=bool(w["tls_cert"]))
    # Each live BLF viewer holds a thread for its stream: they get threads of their own.
    viewers = cfg["blf"]["max_viewers"] if cfg.has("blf") else 0
    try:
        server = make_server(app, ctx.args.listen or w["listen"], ctx.args.port or w["port"],
                             threads=w["threads"] + viewers, backlog=w["backlog"], timeout=w["read_timeout_seconds"],
                             max_header=w["max_header_kb"] * 1024, max_body=w["max_body_mb"] * 1024 * 1024, log=log,
                             tls_cert=w["tls_cert"], tls_key=w["tls_key"])
    except (OSError, ValueError) as e:
        # A missing or unreadable certificate / key: name the keys, no traceback.
        log.error("[web] tls_cert / tls_key: cannot load %s, %s: %s", w["tls_cert"], w["tls_key"], e)
        print(f"asterisk-kit: [web] tls_cert / tls_key: cannot load {w['tls_cert']}, {w['tls_key']}: {e}",
              file=sys.stderr)
        return 2
    _give_store_to_run_user(cfg)
    serve(server, log)
    return 0


def _read_password(args) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    try:
        first = getpass.getpass("Password: ")
        again = getpass.getpass("Repeat password: ")
    except EOFError:
        # stdin closed (cron, `< /dev/null`): say what to do instead of a traceback
        raise SystemExit("\nasterisk-kit: no password given (end of input); type it at the prompt, "
                         "or pipe it with --password-stdin; nothing changed") from None
    if again != first:
        raise SystemExit("asterisk-kit: the passwords differ, nothing changed")
    return first


def _account(ctx, action) -> int:
    from .. import storage
    from .auth import UserError
    from .perms import PermsError
    try:
        conn = storage.connect(ctx.cfg)
        action(conn)
    except (UserError, PermsError) as e:
        print(f"asterisk-kit: {e}", file=sys.stderr)
        return 1
    _give_store_to_run_user(ctx.cfg)
    return 0


def _give_store_to_run_user(cfg) -> None:
    """`user add` is usually run as root, the web app as the Asterisk user: both must write the store."""
    from .. import storage
    path = storage.db_path(cfg)
    for p in (path.parent, path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if p.exists():
            storage.chown_to(p, cfg["asterisk"]["run_user"])


def cmd_add(ctx) -> int:
    from . import auth
    password = _read_password(ctx.args)

    def act(conn):
        auth.add_user(conn, ctx.args.name, password)
        print(f"user {ctx.args.name!r} created")
    return _account(ctx, act)


def cmd_passwd(ctx) -> int:
    from . import auth
    password = _read_password(ctx.args)

    def act(conn):
        auth.set_password(conn, ctx.args.name, password)
        print(f"password of {ctx.args.name!r} changed; their open sessions were ended")
    return _account(ctx, act)


def cmd_delete(ctx) -> int:
    from . import auth

    def act(conn):
        auth.delete_user(conn, ctx.args.name)
        print(f"user {ctx.args.name!r} deleted")
    return _account(ctx, act)


def cmd_list(ctx) -> int:
    from . import auth, perms

    def act(conn):
        for row in auth.list_users(conn):
            p = perms.get(conn, row["name"])
            print(f"{row['name']}\tcreated {time.strftime('%Y-%m-%d %H:%M', time.localtime(row['created']))}"
                  f"\tpassword changed {time.strftime('%Y-%m-%d %H:%M', time.localtime(row['changed']))}"
                  + (f"\t{_perms_line(p)}" if p else ""))
    return _account(ctx, act)


def _perms_line(p) -> str:
    from .perms import PERMISSIONS, cur_groups_text
    return (f"extension {p.extension or '-'}\tallow {','.join(x for x in PERMISSIONS if x in p.allowed) or '-'}"
            f"\tgroups {cur_groups_text(p)}")


def _split(v):
    return [x for x in (v or "").split(",")]


def cmd_set(ctx) -> int:
    from . import perms
    a = ctx.args

    def act(conn):
        p = perms.update(conn, a.name, extension=a.extension, allow=_split(a.allow), deny=_split(a.deny),
                         only=_split(a.only) if a.only is not None else None,
                         groups=_split(a.groups) if a.groups is not None else None)
        print(f"{a.name}\t{_perms_line(p)}")
    return _account(ctx, act)


def cmd_show(ctx) -> int:
    from . import perms

    def act(conn):
        p = perms.get(conn, ctx.args.name)
        if p is None:
            raise perms.PermsError(f"no such user {ctx.args.name!r}")
        print(f"{p.name}\t{_perms_line(p)}")
    return _account(ctx, act)


def cmd_audit(ctx) -> int:
    from . import audit

    def act(conn):
        for r in audit.recent(conn, max(1, ctx.args.limit), ctx.args.user):
            print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(r['at']))}\t{r['user']}\t{r['action']}"
                  f"\t{r['target'] or '-'}\t{r['result']}\t{r['address']}\t{r['detail']}")
    return _account(ctx, act)
