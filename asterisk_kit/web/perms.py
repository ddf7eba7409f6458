"""What a web viewer may see on the operator panel, asked through ONE function so the per-user
permissions table (users admin page) plugs in here and nowhere else.

For now: a logged-in user sees numbers and every group; an anonymous wall screen ([blf]
anonymous_networks) sees names only unless [blf] anonymous_see_numbers = yes.
"""
from __future__ import annotations

from typing import Optional, Set, Tuple


def viewer_perms(web, user: Optional[str]) -> Tuple[bool, Optional[Set[str]]]:
    """(see_numbers, groups): groups None = every group."""
    if user:
        return True, None
    return bool(web.cfg["blf"]["anonymous_see_numbers"]), None


def dial_allowed(web, user: Optional[str]) -> bool:
    """Whether the page renders call-back buttons (the actions helper implements the dial itself)."""
    return False
