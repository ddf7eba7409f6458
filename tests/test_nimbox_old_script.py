"""Switching from the old `phonecalls` Perl replicator: with the default config the kit builds the
same NiMbox key (initiated, source, destination) as the old script did, so no call is doubled, and
the destination recipe the docs give as the old script's behaviour is exactly that."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from asterisk_kit.config import parse_text
from asterisk_kit.nimbox.call import rewrite
from testbed.fakes.nimbox import FakeNimbox
from testbed.kitcli import kit
from testbed.nimbox import nimbox_config
from tests.test_nimbox import _now, cdr_rows, insert_cdr

DOCS = Path(__file__).resolve().parents[1] / "docs" / "nimbox.md"


def old_script_destination(dst: str, area: str) -> str:
    """The old script's rule, written from its description (shared/apis/nimbox.md), not from the kit:
    only a number starting with 9 changes; the 9 goes; exactly 7 digits left get the area code."""
    if not dst.startswith("9"):
        return dst
    rest = dst[1:]
    return area + rest if len(rest) == 7 and rest.isdigit() else rest


def documented_recipe() -> str:
    """The `destination_rules = ...` line of the setup example in docs/nimbox.md, as the user copies it."""
    lines = [ln for ln in DOCS.read_text().splitlines() if ln.startswith("destination_rules = ")]
    assert len(lines) == 1, lines
    return lines[0].split("=", 1)[1].strip()


@pytest.mark.parametrize("dst, expected", [
    ("95551234", "02125551234"),       # 9 + 7 digits: area code
    ("989161234567", "89161234567"),   # 9 + a full number: 9 stripped
    ("9123456", "123456"),             # 9 + 6 digits: only the 9 goes
    ("1234567", "1234567"),            # no leading 9: unchanged, even with 7 digits
    ("84951234567", "84951234567"),
    ("99123456", "02129123456"),       # 9 + 7 digits that start with 9: area code, nothing more
    ("991234567", "91234567"),         # 9 + 8 digits: stripped once
    ("9", ""),                         # a lone 9: nothing left (the kit then refuses the call)
    ("9*12", "*12"),
    ("0212555", "0212555"),
])
def test_documented_recipe_is_the_old_rule(tmp_path, dst, expected):
    recipe = documented_recipe()
    cfg = parse_text(f"[general]\ndata_dir = {tmp_path}\n[asterisk]\nami_user = x\nami_secret = x\n"
                     f"[nimbox]\nurl = http://127.0.0.1:1\ntoken = t\ndestination_rules = {recipe}\n",
                     tmp_path / "kit.ini")
    got = rewrite(dst, cfg["nimbox"]["destination_rules"])
    assert got == expected == old_script_destination(dst, "0212")


def test_config_example_recipe_is_the_documented_one():
    from asterisk_kit.config import SCHEMA
    assert SCHEMA["nimbox"].keys["destination_rules"].example == documented_recipe()


def old_script_records(rows, area: str):
    """What the old script left in NiMbox for these CDR rows: every row with LENGTH(dst) >= 7, calldate
    formatted %Y-%m-%dT%TZ (local time labelled Z), the destination rewritten by its rule; NiMbox
    kept one call per key and refused unknown numbers."""
    out = {}
    for calldate, src, dst, duration, _billsec, _disp, _rec, _linkedid, _uniqueid, _seq in rows:
        if len(dst) < 7:
            continue
        d = old_script_destination(dst, area)
        if not re.fullmatch(r"\+?\d{10,15}", d):    # the fake's contacts: unknown numbers were refused
            continue
        key = (calldate.strftime("%Y-%m-%dT%H:%M:%SZ"), src, d)
        out.setdefault(key, {"initiated": key[0], "source": src, "destination": d, "duration": str(duration),
                             "url": "", "contactId": 1, "phonecallId": 1, "at": 0.0})
    return out


def test_default_config_adds_nothing_to_what_the_old_script_sent(tmp_path, mariadb):
    mariadb.execute("TRUNCATE TABLE cdr", database="asteriskcdrdb")
    fake = FakeNimbox().start()
    try:
        rows, expected, _ = cdr_rows(1603, _now() - dt.timedelta(minutes=100))
        insert_cdr(mariadb, rows)
        fake.records.update(old_script_records(rows, "495"))
        before = set(fake.records)
        assert len(before) >= len(expected)
        # The default config: no initiated_format key at all.
        cfg = nimbox_config(tmp_path, None, fake.url, mysql=mariadb.mysql_section())
        assert "initiated_format" not in cfg.read_text()
        r = kit(cfg, "nimbox", "sync", timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "created 0," in r.stdout, r.stdout
        assert set(fake.records) == before                      # not one call doubled
        assert fake.answers["duplicate"] == len(expected)       # every call was recognised by its key
    finally:
        fake.stop()
        mariadb.execute("TRUNCATE TABLE cdr", database="asteriskcdrdb")
