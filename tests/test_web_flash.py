"""Post/redirect/get: what a form sends to the page after the 303 is shown once, to that session only."""
from __future__ import annotations

from asterisk_kit import storage
from asterisk_kit.web import flash


def test_flash_is_per_session_per_page_and_taken_once(tmp_path):
    c = storage.connect(path=tmp_path / "s.sqlite")
    flash.put(c, "sid-a", "/dialer/c/1", {"errors": {"name": "Пусто"}, "form": {"name": ""}, "notice": ""})
    assert flash.take(c, "sid-b", "/dialer/c/1") is None           # another session sees nothing
    assert flash.take(c, "sid-a", "/dialer") is None               # another page neither
    assert flash.take(c, "sid-a", "/dialer/c/1")["errors"] == {"name": "Пусто"}
    assert flash.take(c, "sid-a", "/dialer/c/1") is None           # shown once
    # Abandoned rows are pruned by the next write.
    flash.put(c, "sid-a", "/x", {"notice": "old"})
    c.execute("UPDATE web_flash SET created = created - 7200")
    flash.put(c, "sid-c", "/y", {"notice": "new"})
    assert [r[0] for r in c.execute("SELECT path FROM web_flash")] == ["/y"]
