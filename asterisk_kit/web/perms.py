"""What each web user may do: their own extension, a set of permissions and the BLF groups they see.

Kept next to the accounts in the kit's store (table web_user_perms, one row per web user, removed with
it). Users that existed before this table keep what they had: they may view and see numbers, and the
oldest of them is the admin (nobody else could manage accounts before either). A user created later
starts with `view` only; the very first account of a fresh store is the admin.
"""
from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import FrozenSet, Iterable, List, Optional, Set, Tuple

from .. import storage

# Order = how the admin page and `user show` list them.
PERMISSIONS = ("view", "dial", "transfer", "pickup", "hangup", "queue", "queue_others", "numbers", "admin")
NEW_USER = ("view",)
FIRST_USER = ("view", "numbers", "admin")
ALL_GROUPS = "*"
EXTEN_RE = re.compile(r"[0-9]{1,20}")
GROUP_RE = re.compile(r"[^,;:\r\n]{1,80}")

MIGRATIONS = [
    """CREATE TABLE web_user_perms (
         name TEXT PRIMARY KEY REFERENCES web_users (name) ON DELETE CASCADE,
         extension TEXT NOT NULL DEFAULT '', perms TEXT NOT NULL, groups TEXT NOT NULL DEFAULT '*');
       INSERT INTO web_user_perms (name, perms) SELECT name, 'view,numbers' FROM web_users;
       UPDATE web_user_perms SET perms = 'view,numbers,admin'
         WHERE name = (SELECT name FROM web_users ORDER BY created, name LIMIT 1)""",
]


class PermsError(ValueError):
    """Bad extension, permission or group name given by the admin."""


@dataclass(frozen=True)
class Perms:
    name: str
    extension: str
    allowed: FrozenSet[str]
    groups: Optional[FrozenSet[str]]        # None: every group (and extensions in none)

    def has(self, perm: str) -> bool:
        return perm in self.allowed

    def sees_group(self, group: str) -> bool:
        """GROUP is a BLF group title; "" is an extension in no group, seen only with every group."""
        return self.groups is None or (bool(group) and group in self.groups)

    def public(self) -> dict:
        return {"user": self.name, "extension": self.extension, "permissions": sorted(self.allowed),
                "groups": None if self.groups is None else sorted(self.groups)}


def init(conn: sqlite3.Connection) -> None:
    storage.migrate(conn, "web_perms", MIGRATIONS)


def _parse_groups(text: str) -> Optional[FrozenSet[str]]:
    return None if text.strip() == ALL_GROUPS else frozenset(g for g in text.split(",") if g)


def _row_perms(row) -> Perms:
    return Perms(row["name"], row["extension"], frozenset(p for p in row["perms"].split(",") if p in PERMISSIONS),
                 _parse_groups(row["groups"]))


def get(conn: sqlite3.Connection, name: str) -> Optional[Perms]:
    """The user's permissions, None when there is no such user."""
    init(conn)
    row = conn.execute("SELECT name, extension, perms, groups FROM web_user_perms WHERE name = ?", (name,)).fetchone()
    return _row_perms(row) if row else None


def all_users(conn: sqlite3.Connection) -> List[Perms]:
    init(conn)
    return [_row_perms(r) for r in conn.execute("SELECT name, extension, perms, groups FROM web_user_perms "
                                                "ORDER BY name").fetchall()]


def on_new_user(conn: sqlite3.Connection, name: str) -> None:
    """Called inside `add_user`'s transaction, after the account row exists."""
    init(conn)
    first = conn.execute("SELECT COUNT(*) FROM web_users").fetchone()[0] == 1
    conn.execute("INSERT OR REPLACE INTO web_user_perms (name, perms, groups) VALUES (?, ?, '*')",
                 (name, ",".join(FIRST_USER if first else NEW_USER)))


def check_perms(items: Iterable[str]) -> List[str]:
    out = []
    for p in items:
        p = p.strip()
        if not p:
            continue
        if p not in PERMISSIONS:
            raise PermsError(f"unknown permission {p!r}: expected some of {', '.join(PERMISSIONS)}")
        out.append(p)
    return out


def check_extension(ext: str) -> str:
    ext = ext.strip()
    if ext and not EXTEN_RE.fullmatch(ext):
        raise PermsError(f"invalid extension {ext!r}: digits only, at most 20")
    return ext


def check_groups(items: Iterable[str]) -> Optional[List[str]]:
    """Group titles as [blf] groups names them, or ["*"] for all: None = all."""
    out = []
    for g in items:
        g = g.strip()
        if not g:
            continue
        if g == ALL_GROUPS:
            return None
        if not GROUP_RE.fullmatch(g):
            raise PermsError(f"invalid group name {g!r}")
        out.append(g)
    return out


def update(conn: sqlite3.Connection, name: str, extension: Optional[str] = None,
           allow: Iterable[str] = (), deny: Iterable[str] = (), only: Optional[Iterable[str]] = None,
           groups: Optional[Iterable[str]] = None, admin_guard: bool = True) -> Perms:
    """Change a user's row. ONLY replaces the whole set; ALLOW/DENY add/remove. GROUPS: names or "*".
    With ADMIN_GUARD the last admin cannot lose `admin` (someone must be able to manage the others)."""
    init(conn)
    allow_l, deny_l = check_perms(allow), check_perms(deny)
    only_l = check_perms(only) if only is not None else None
    ext = check_extension(extension) if extension is not None else None
    grp = check_groups(groups) if groups is not None else None
    with storage.transaction(conn):
        cur = get(conn, name)
        if cur is None:
            raise PermsError(f"no such user {name!r}")
        new = set(only_l) if only_l is not None else set(cur.allowed)
        new = (new | set(allow_l)) - set(deny_l)
        if admin_guard and cur.has("admin") and "admin" not in new:
            others = conn.execute("SELECT COUNT(*) FROM web_user_perms WHERE name != ? AND "
                                  "(',' || perms || ',') LIKE '%,admin,%'", (name,)).fetchone()[0]
            if not others:
                raise PermsError(f"{name!r} is the last admin: give `admin` to someone else first")
        if groups is None:
            groups_text = cur_groups_text(cur)          # unchanged
        else:
            groups_text = ALL_GROUPS if grp is None else ",".join(grp)
        conn.execute("UPDATE web_user_perms SET extension = ?, perms = ?, groups = ? WHERE name = ?",
                     (cur.extension if ext is None else ext, ",".join(p for p in PERMISSIONS if p in new),
                      groups_text, name))
    out = get(conn, name)
    assert out is not None
    return out


def cur_groups_text(p: Perms) -> str:
    return ALL_GROUPS if p.groups is None else ",".join(sorted(p.groups))


# ---- what the operator panel shows a viewer (the one place the panel asks) ----------------------

def viewer_perms(web, user: Optional[str]) -> Tuple[bool, Optional[Set[str]]]:
    """(see_numbers, groups) of a /blf viewer; groups None = every group. An anonymous wall screen
    ([blf] anonymous_networks) sees names only unless [blf] anonymous_see_numbers = yes; a login
    sees what its row in web_user_perms allows (`numbers`, its groups; nothing without `view`)."""
    if not user:
        return bool(web.cfg["blf"]["anonymous_see_numbers"]), None
    p = get(web.db(), user)
    if p is None or not p.has("view"):
        return False, set()
    return p.has("numbers"), (None if p.groups is None else set(p.groups))


def dial_allowed(web, user: Optional[str]) -> bool:
    """Whether the page renders call-back buttons: the user may dial and has an own extension."""
    if not user:
        return False
    p = get(web.db(), user)
    return bool(p and p.has("dial") and p.extension)
