"""[dialer] config means what the docs say: inline comments are comments, and every value rendered into
the dialplan is allow-listed for what it is (a channel with ${NUMBER}, a sound name, a dial target)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from asterisk_kit.config import ConfigError, parse_text
from asterisk_kit.install import render_dialplan

ROOT = Path(__file__).resolve().parent.parent
BASE = "[asterisk]\nami_user = kit\nami_secret = s3cret\n"


def docs_dialer_snippet() -> str:
    text = (ROOT / "docs" / "dialer.md").read_text(encoding="utf-8")
    return re.search(r"^```ini\n(.*?)^```", text, re.M | re.S).group(1)


def test_the_documented_dialer_section_renders_the_dialplan_it_shows(tmp_path):
    """docs/dialer.md writes `dial_out = Local/${NUMBER}@from-internal   ; FreePBX: …`: the comment must
    not reach the dialplan, where `;` would cut Dial()'s timeout, Read()'s digit count and the IVR match."""
    snippet = docs_dialer_snippet()
    assert "; FreePBX" in snippet and "; IVR" in snippet          # the doc still writes inline comments
    cfg = parse_text(BASE + snippet, tmp_path / "kit.ini", environ={})
    d = cfg["dialer"]
    assert (d["dial_out"], d["sound"], d["ivr_prompt"], d["connect_to"], d["bundle"]) == \
        ("Local/${NUMBER}@from-internal", "custom/avtoobzvon", "custom/avtoobzvon-ivr", "Local/100@from-internal", 10)
    plan = render_dialplan(cfg)
    # The configured sound and prompt are the defaults for call files that carry no campaign message.
    for line in ("Dial(Local/${EXTEN}@from-internal,40)", '?custom/avtoobzvon:${KIT_SOUND})',
                 '?custom/avtoobzvon-ivr:${KIT_PROMPT})', "Read(PRESSED,${KIT_MSG},1,,1,7)",
                 "n,Dial(Local/100@from-internal)"):
        assert line in plan, (line, plan)
    # No `;` anywhere but in whole-line comments: nothing of a value is cut off by Asterisk.
    code = [ln for ln in plan.splitlines() if not ln.lstrip().startswith(";")]
    assert not [ln for ln in code if ";" in ln], [ln for ln in code if ";" in ln]


@pytest.mark.parametrize("line", ["ami_secret = change-me ; or ASTERISK_KIT_ASTERISK_AMI_SECRET",
                                  "ami_secret = change-me\t# from the environment better"])
def test_inline_comment_is_not_part_of_a_secret(tmp_path, line):
    cfg = parse_text("[asterisk]\nami_user = kit\n" + line + "\n", tmp_path / "kit.ini", environ={})
    assert cfg["asterisk"]["ami_secret"] == "change-me"


def test_semicolon_without_a_space_before_stays_in_the_value(tmp_path):
    cfg = parse_text(BASE + "[nimbox]\nurl = https://crm.acme.ru\ntoken = t\n"
                     "destination_rules = ^9(\\d{7,})$ => \\1; ^(\\d{7})$ => 495\\1   ; strip 9, add the area code\n",
                     tmp_path / "kit.ini", environ={})
    assert len(cfg["nimbox"]["destination_rules"]) == 2


BAD = [
    ("dial_out", "PJSIP/${NUMBER}@trunk,60"),          # a second Dial() argument
    ("dial_out", "PJSIP/${NUMBER}@trunk,,tT"),
    ("dial_out", "PJSIP/89990000000@trunk"),           # no ${NUMBER}: every call dials the same place
    ("dial_out", "Local/${NUMBER}@from-internal;x"),   # `;` ends the dialplan line
    ("dial_out", "PJSIP/${NUMBER}@trunk)"),            # unbalanced parenthesis
    ("dial_out", "PJSIP/${SHELL(rm -rf /)}${NUMBER}"),
    ("dial_out", "PJSIP/$[1+1]${NUMBER}"),
    ("dial_out", "PJSIP/${NUMBER} @trunk"),
    ("connect_to", "Local/100@from-internal,30"),
    ("connect_to", "Local/100@from-internal)"),
    ("connect_to", "100"),
    ("sound", "custom/avtoobzvon,noanswer"),          # Playback option smuggled in
    ("sound", "custom/avtoobzvon)"),
    ("sound", "custom/a b"),
    ("sound", "${SHELL(id)}"),
    ("ivr_prompt", "custom/x,5"),                      # would change Read()'s digit count
    ("ivr_prompt", "custom/x;y"),
    ("ivr_prompt", ""),
]


@pytest.mark.parametrize("key,value", BAD)
def test_dialplan_values_are_allow_listed(tmp_path, key, value):
    with pytest.raises(ConfigError) as ei:
        parse_text(BASE + f"[dialer]\n{key} = {value}\n", tmp_path / "kit.ini", environ={})
    (p,) = ei.value.problems
    assert p.startswith(f"{tmp_path / 'kit.ini'}: [dialer] {key}: expected ") and repr(value) in p, p


@pytest.mark.parametrize("key,value", [
    ("dial_out", "PJSIP/${NUMBER}@trunk&PJSIP/${NUMBER}@backup"), ("dial_out", "Local/${NUMBER}@from-internal/n"),
    ("dial_out", "SIP/trunk/${NUMBER}"), ("dial_out", "PJSIP/+7${NUMBER}@trunk"),
    ("connect_to", "Local/${CALLEE}@kit-test-connected"), ("connect_to", ""),
    ("sound", "/usr/share/asterisk/sounds/en/beep"), ("sound", "custom/part1&custom/part-2"),
    ("ivr_prompt", "custom/avtoobzvon-ivr")])
def test_ordinary_dialplan_values_pass(tmp_path, key, value):
    cfg = parse_text(BASE + f"[dialer]\n{key} = {value}\n", tmp_path / "kit.ini", environ={})
    assert cfg["dialer"][key] == value


def test_environment_values_are_checked_the_same_way(tmp_path):
    with pytest.raises(ConfigError, match=r"\[dialer\] dial_out \(from environment ASTERISK_KIT_DIALER_DIAL_OUT\)"):
        parse_text(BASE + "[dialer]\n", tmp_path / "kit.ini", environ={"ASTERISK_KIT_DIALER_DIAL_OUT": "PJSIP/x,1"})
