"""Call files: rendered from Jinja templates, checked line by line, then renamed into the spool.

Asterisk reads a call file as `Key: value` lines: it splits on any newline, cuts lines at 256
bytes and treats `#` and `;` as comments. The inputs are allow-listed (numbers.py) and the
CallerID is checked here; the rendered text is then verified against a line grammar as a last
guard, so a custom template or a future field cannot smuggle a line in either.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, Optional

from ..resources import shipped
from ..storage import chown_to

_LINE = re.compile(r"(?P<key>[A-Za-z]+): (?P<value>[^\r\n#;\x00]*)")
# No Application:/Data: — the kit's call files always run the shipped dialplan (Context/Extension).
_KEYS = {"Channel", "CallerID", "MaxRetries", "RetryTime", "WaitTime", "Context", "Extension", "Priority",
         "Setvar", "Set", "Archive", "Account", "Codecs", "AlwaysDelete",
         "Callerid"}


class CallFileError(ValueError):
    pass


def file_name(run_id: int, number: str, attempt: int = 1) -> str:
    """One name per attempt, so an archived file of attempt 1 is never taken for attempt 2."""
    return f"asterisk-kit-{run_id}-{number}-{attempt}.call"


def parse_name(name: str):
    """(run, number, attempt); names from before campaigns carry no attempt (1)."""
    m = re.fullmatch(r"asterisk-kit-([0-9]+)-([0-9]+)(?:-([0-9]+))?\.call", name)
    return (int(m.group(1)), m.group(2), int(m.group(3) or 1)) if m else None


class Renderer:
    def __init__(self, cfg):
        import jinja2
        d = cfg["dialer"]
        folders = [str(shipped("templates") / "dialer")]
        if d["templates_dir"]:
            folders.insert(0, d["templates_dir"])
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(folders), undefined=jinja2.StrictUndefined,
                                      keep_trailing_newline=True, autoescape=False)
        self.plain = self.env.get_template("plain.call.j2")
        self.ivr = self.env.get_template("ivr.call.j2")
        from .campaigns import resolve
        self.cfg = cfg
        self.defaults = resolve(cfg, {})

    def render(self, run_id: int, number: str, digit: str = "", settings: Optional[dict] = None) -> str:
        """SETTINGS: the run's resolved campaign settings (default: the config's). Retries are the kit's
        (it re-spools after the delay), so a call file always says MaxRetries: 0."""
        from .settings import _callerid, _dial_target, _sound
        st = settings or self.defaults
        if not re.fullmatch(r"[0-9]{1,20}", number) or not re.fullmatch(r"[0-9]?", digit):
            raise CallFileError(f"refusing to render a call file for number {number!r} digit {digit!r}")
        try:        # checked when saved; checked again here as the values reach Asterisk
            values = {"callerid": _callerid(st["callerid"]), "sound": _sound(st["sound"]),
                      "ivr_prompt": _sound(st["ivr_prompt"]),
                      # the [dialer] connect_to is in the dialplan itself (it may use ${VARIABLES});
                      # only a campaign's own target travels in the call file, without variables
                      "connect_to": "" if st["connect_to"] == self.cfg["dialer"]["connect_to"]
                      else _dial_target(st["connect_to"]) if "$" not in st["connect_to"] else "-",
                      "optout": st["optout_digit"] if re.fullmatch(r"[0-9]?", st["optout_digit"]) else "-",
                      "wait_time": int(st["wait_time"])}
        except Exception as e:
            raise CallFileError(f"campaign settings do not render: {e}") from None
        if "-" in (values["connect_to"], values["optout"]):
            raise CallFileError("campaign settings do not render: connect_to or optout_digit")
        tpl = self.ivr if digit else self.plain
        text = tpl.render(number=number, digit=digit, run_id=int(run_id), max_retries=0,
                          retry_time=self.cfg["dialer"]["retry_time"], **values)
        verify(text)
        return text


def verify(text: str) -> None:
    """Every line must be one `Key: value` the way Asterisk will read it."""
    if "\r" in text or "\x00" in text:
        raise CallFileError("call file contains a carriage return or NUL")
    for line in text.split("\n"):
        if line == "":
            continue
        if len(line.encode("utf-8")) >= 255:
            raise CallFileError(f"call file line longer than Asterisk reads: {line[:40]!r}…")
        m = _LINE.fullmatch(line)
        if not m or m.group("key") not in _KEYS:
            raise CallFileError(f"call file line not allowed: {line!r}")


class Spool:
    """Asterisk's outgoing spool: write in spool/tmp, rename into spool/outgoing (same filesystem)."""

    def __init__(self, cfg):
        a = cfg["asterisk"]
        self.root = Path(a["spool_dir"])
        self.tmp = self.root / "tmp"
        self.outgoing = self.root / "outgoing"
        self.done = self.root / "outgoing_done"
        self.run_user = a["run_user"]

    def hand_over(self, files) -> None:
        """Hand FILES [(name, text), ...] to Asterisk: all written to spool/tmp and made durable with one
        sync, then each renamed into outgoing/ (atomic: Asterisk never sees a half-written file)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        staged = []
        for name, text in files:
            tmp = self.tmp / name
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            chown_to(tmp, self.run_user)
            staged.append((tmp, self.outgoing / name))
        if not staged:
            return
        os.sync()           # one flush for the whole batch instead of an fsync per file
        for tmp, final in staged:
            os.rename(tmp, final)
        fd = os.open(self.outgoing, os.O_RDONLY)
        try:
            os.fsync(fd)    # the renames themselves survive a power cut
        finally:
            os.close(fd)

    def seen(self, name: str) -> bool:
        """Asterisk has (or had) this call file: still in outgoing, or archived in outgoing_done."""
        return (self.outgoing / name).exists() or (self.done / name).exists()

    def waiting(self, run_id: Optional[int] = None):
        """The call files of RUN_ID (None: of every run) Asterisk still holds in outgoing/."""
        prefix = "asterisk-kit-" if run_id is None else f"asterisk-kit-{run_id}-"
        try:
            return [p for p in self.outgoing.iterdir() if p.name.startswith(prefix) and p.name.endswith(".call")]
        except FileNotFoundError:
            return []

    def finished(self, run_id: int) -> Dict[str, Path]:
        prefix = f"asterisk-kit-{run_id}-"
        try:
            return {p.name: p for p in self.done.iterdir() if p.name.startswith(prefix)}
        except FileNotFoundError:
            return {}


def being_dialled(path: Path) -> bool:
    """Asterisk appends `StartRetry:` to a call file when it starts dialling it and `EndRetry:` when
    that attempt ended with retries left: a StartRetry last means the call is up right now. Such a
    file must not be deleted (Asterisk re-creates it by appending EndRetry/Status to the name)."""
    last = ""
    try:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(("StartRetry:", "EndRetry:")):
                last = line.split(":", 1)[0]
    except FileNotFoundError:
        return False
    return last == "StartRetry"


def archived_status(path: Path) -> Optional[str]:
    """The `Status:` line Asterisk appends when it archives a call file (Completed/Expired/Failed)."""
    status = None
    try:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("Status:"):
                status = line.split(":", 1)[1].strip()
    except FileNotFoundError:
        return None
    return status
