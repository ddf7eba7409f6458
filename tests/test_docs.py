"""The docs mean what they say: every ini snippet of README.md and docs/*.md passes `asterisk-kit config
check` once its placeholders are filled in (the way an admin would), is refused while they are not, and
every command and option the README (and docs/dialer.md) names exists in the command's --help."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

from asterisk_kit.config import SCHEMA

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```", re.M | re.S)
# What an admin replaces: the example's secrets and hosts.
FILL = [("change-me", "s3cret-from-the-test"), ("example.com", "acme.ru"), ("example.ru", "acme.ru"),
        ("00000000-0000-0000-0000-000000000000", "6f1c2b7e-1d2a-4c1b-9a57-3f1e2d4c5b6a")]


def fences():
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            yield doc, text[:m.start()].count("\n") + 1, m.group(1), m.group(2)


INI = [pytest.param(body, id=f"{doc.name}:{line}") for doc, line, lang, body in fences() if lang == "ini"]


def run_kit(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "asterisk_kit", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def check(tmp_path, body, fill: bool):
    text = body
    if not re.search(r"^\[asterisk\]", text, re.M):      # snippets show their own section; the file needs this one
        text = "[asterisk]\nami_user = kit\nami_secret = s3cret\n\n" + text
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASTERISK_KIT_")}
    if fill:
        for a, b in FILL:
            text = text.replace(a, b)
        for name in set(re.findall(r"ASTERISK_KIT_[A-Z0-9_]+", body)):   # "better from ASTERISK_KIT_…"
            env[name] = "from-the-environment"
    p = tmp_path / "kit.ini"
    p.write_text(text, encoding="utf-8")
    return run_kit("--config", str(p), "config", "check", env=env)


def test_there_are_snippets_to_check():
    assert len(INI) >= 5, "the extraction found too few ini snippets: the test would prove little"
    assert len(WITH_PLACEHOLDERS) >= 2


@pytest.mark.parametrize("body", INI)
def test_ini_snippet_passes_config_check(tmp_path, body):
    r = check(tmp_path, body, fill=True)
    assert r.returncode == 0 and ": ok (" in r.stdout, body + "\n" + r.stdout + r.stderr


WITH_PLACEHOLDERS = [p for p in INI if any(a in p.values[0] for a, _ in FILL)]


@pytest.mark.parametrize("body", WITH_PLACEHOLDERS)
def test_ini_snippet_placeholders_are_flagged(tmp_path, body):
    r = check(tmp_path, body, fill=False)
    assert r.returncode == 2 and "still the example's placeholder" in r.stderr, r.stdout + r.stderr


def test_no_kit_config_hides_in_another_fence():
    """A kit section shown in a fence not tagged `ini` would escape the check above."""
    kit_sections = re.compile(r"^\[(?:%s)(?::[\w.-]+)?\]\s*$" % "|".join(map(re.escape, SCHEMA)), re.M)
    hidden = [f"{doc.name}:{line}" for doc, line, lang, body in fences() if lang != "ini" and kit_sections.search(body)]
    assert not hidden


def test_inline_comments_in_the_readme_snippet_are_comments(tmp_path):
    """README writes `ami_secret = change-me   ; or ASTERISK_KIT_…`: the comment is not part of the secret."""
    from asterisk_kit.config import parse_text
    readme = next(b for d, _, lang, b in fences() if d.name == "README.md" and lang == "ini")
    assert ";" in readme
    cfg = parse_text(readme, tmp_path / "kit.ini", environ={})
    assert cfg["asterisk"]["ami_secret"] == "change-me"
    assert cfg.placeholders and "[asterisk] ami_secret" in cfg.placeholders[0]


# ---- commands --------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def help_of(path: tuple) -> str:
    r = run_kit(*path, "--help")
    assert r.returncode == 0, (path, r.stderr)
    return r.stdout


def named_commands():
    """(command path, options) for every `asterisk-kit …` in backticks in README.md and docs/dialer.md."""
    out = {}
    for doc in (ROOT / "README.md", ROOT / "docs" / "dialer.md"):
        for span in re.findall(r"`(asterisk-kit [^`]+)`", doc.read_text(encoding="utf-8")):
            path = []
            for w in span.split()[1:]:
                if not re.fullmatch(r"[a-z][a-z-]*", w):
                    break
                path.append(w)
            out.setdefault(tuple(path), set()).update(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", span))
    return out


def test_every_command_the_readme_names_exists():
    cmds = named_commands()
    assert ("dialer", "tick") in cmds and ("config", "check") in cmds and len(cmds) >= 15, cmds
    missing = []
    for path, opts in sorted(cmds.items()):
        for i in range(len(path)):             # each word is listed in its parent's --help
            parent = help_of(tuple(path[:i]))
            if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(path[i]), parent):
                missing.append(" ".join(path[:i + 1]))
                break
        else:
            shown = help_of(tuple(path)) + (help_of(()) if path else "")
            missing += [f"{' '.join(path)} {o}" for o in opts if o not in shown]
    assert not missing, missing
