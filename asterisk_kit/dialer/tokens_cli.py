"""`asterisk-kit dialer token create|list|revoke`: the API tokens of the page /dialer/tokens, for scripts."""
from __future__ import annotations

import datetime as dt
import sys


def register(ds) -> None:
    p = ds.add_parser("token", help="API tokens of the autodialer's JSON API (docs/dialer-api.md)")
    ts = p.add_subparsers(dest="token_command", metavar="ACTION")
    ts.required = True
    a = ts.add_parser("create", help="create a token for a web user and print it (shown only this once)")
    a.add_argument("--user", required=True, help="the web user the token acts for")
    a.add_argument("--name", required=True, help="what the token is for (e.g. the CRM's name)")
    a.add_argument("--campaign", type=int, default=None, metavar="ID", help="limit it to one campaign "
                                                                           "(default: all campaigns)")
    a.add_argument("--expires", default=None, metavar="YYYY-MM-DD", help="last day it works (PBX time)")
    a.set_defaults(func=cmd_create)
    a = ts.add_parser("list", help="the tokens (first characters only), their scope, last use and state")
    a.add_argument("--user", default=None, help="only this user's")
    a.set_defaults(func=cmd_list)
    a = ts.add_parser("revoke", help="revoke a token by its id (from `list`)")
    a.add_argument("id", type=int)
    a.set_defaults(func=cmd_revoke)


def _conn(ctx):
    from ..web import auth
    from . import store, tokens
    conn = store.connect(ctx.cfg)
    auth.init(conn)
    tokens.init(conn)
    return conn


def _fail(msg: str) -> int:
    print(f"asterisk-kit: {msg}", file=sys.stderr)
    return 1


def cmd_create(ctx) -> int:
    from . import schedule, store, tokens
    a, conn = ctx.args, _conn(ctx)
    name = " ".join(a.name.split())
    if not name or len(name) > tokens.MAX_NAME:
        return _fail(f"--name: 1 to {tokens.MAX_NAME} characters")
    if conn.execute("SELECT 1 FROM web_users WHERE name = ?", (a.user,)).fetchone() is None:
        return _fail(f"no web user {a.user!r} (`asterisk-kit user list`)")
    if a.campaign is not None and store.campaign(conn, a.campaign) is None:
        return _fail(f"no campaign {a.campaign}")
    expires = None
    if a.expires:
        try:
            day = dt.date.fromisoformat(a.expires)
        except ValueError:
            return _fail(f"--expires {a.expires!r}: expected a date YYYY-MM-DD")
        if day <= schedule.now(ctx.cfg).date():
            return _fail("--expires: tomorrow or later")
        expires = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), schedule.tz(ctx.cfg)).timestamp()
    token_id, secret = tokens.create(conn, a.user, name, a.campaign, expires)
    ctx.logger("dialer").info("token %s %r created for %s from the command line", secret[:tokens.PREFIX_LEN], name,
                              a.user)
    print(f"token {token_id} created; copy it now, it is not shown again:", file=sys.stderr)
    print(secret)
    return 0


def cmd_list(ctx) -> int:
    import time

    from . import tokens
    from .web_api import iso
    now = time.time()
    for r in tokens.listing(_conn(ctx), ctx.args.user):
        state = "revoked" if r["revoked"] else "expired" if r["expires"] and r["expires"] <= now else "active"
        scope = "all" if r["campaign_id"] is None else f"campaign {r['campaign_id']}"
        used = iso(ctx.cfg, r["last_used"]) or "-"
        print(f"{r['id']}\t{r['prefix']}…\t{r['user']}\t{scope}\t{state}\tlast used {used}\t{r['name']}")
    return 0


def cmd_revoke(ctx) -> int:
    from . import tokens
    conn = _conn(ctx)
    row = tokens.get(conn, ctx.args.id)
    if row is None:
        return _fail(f"no token {ctx.args.id}")
    if not tokens.revoke(conn, ctx.args.id):
        print(f"token {ctx.args.id} was already revoked")
        return 0
    ctx.logger("dialer").info("token %s %r of %s revoked from the command line", row["prefix"], row["name"],
                              row["user"])
    print(f"token {ctx.args.id} ({row['prefix']}…, {row['name']}) revoked")
    return 0
