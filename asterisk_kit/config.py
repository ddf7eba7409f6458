"""The kit's config: the main ini file plus drop-ins, loading, validation and environment overrides.

Generic on purpose: the sections and keys are declared by the core (settings.py) and by each
capability (asterisk_kit/NAME/settings.py, listed through its descriptor), so `config check`, the
example file, docs/config.md and the error messages all come from those declarations.
Errors always name the file, the section, the key and what was expected.

Files: the main file (`--config`, $ASTERISK_KIT_CONFIG, or /etc/asterisk-kit/asterisk-kit.ini), then
`conf.d/*.ini` beside it in name order; a later file's key wins, sections merge.

Environment overrides: ASTERISK_KIT_<SECTION>_<KEY> (upper case, non-alphanumerics as `_`) replaces
the files' value, e.g. ASTERISK_KIT_ASTERISK_AMI_SECRET or ASTERISK_KIT_BEELINE_ACME_TOKEN for key
`token` of section `[beeline:acme]`. Meant for secrets that should not sit in a file.
"""
from __future__ import annotations

import configparser
import importlib
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .configtypes import Invalid, Key, Section, text

DEFAULT_PATH = "/etc/asterisk-kit/asterisk-kit.ini"
ENV_CONFIG = "ASTERISK_KIT_CONFIG"
ENV_PREFIX = "ASTERISK_KIT_"
DROPIN_DIR = "conf.d"

__all__ = ["Config", "ConfigError", "Key", "Section", "Invalid", "schema", "load", "parse_text",
           "parse_sources", "example_text", "env_name", "resolve_path", "dropin_files"]


class ConfigError(Exception):
    """One or more problems in the config; str() lists them, one per line."""

    def __init__(self, problems: List[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


# ---- the schema: the core's sections, then each capability's -----------------------------------

_schema: Dict[str, Section] = {}


def _ami_keys(section: str) -> Dict[str, Key]:
    return {
        "ami_user": Key(text, "", "AMI user of this capability (its own rights in manager.conf); empty: "
                                  "[asterisk] ami_user."),
        "ami_secret": Key(text, "", f"Secret of that AMI user. Better from {env_name(section, 'ami_secret')}.",
                          secret=True),
    }


def schema() -> Dict[str, Section]:
    """Every section the kit knows, in order: core sections, then capabilities in list order.
    A capability declaring `ami=True` gets optional ami_user / ami_secret keys in its sections."""
    if not _schema:
        from .capabilities import all_capabilities
        from .settings import SECTIONS as core
        out: Dict[str, Section] = dict(core)
        for cap in all_capabilities():
            if not cap.settings:
                continue
            for name, sec in importlib.import_module(cap.settings).SECTIONS.items():
                if name in out:
                    raise RuntimeError(f"config section [{name}] declared twice ({cap.name})")
                if cap.ami:
                    sec = Section(sec.help, {**sec.keys, **_ami_keys(name)}, required=sec.required,
                                  multi=sec.multi, example=sec.example, validate=sec.validate, ami=True)
                out[name] = sec
        _schema.update(out)
    return _schema


def __getattr__(name: str) -> Any:
    if name == "SCHEMA":        # config.SCHEMA: the assembled schema (built on first use)
        return schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---- the loaded config -------------------------------------------------------------------------

class Config:
    """Typed, validated settings. `cfg["asterisk"]["ami_port"]` -> int; typed views of the core
    sections: `cfg.general`, `cfg.log`, `cfg.asterisk`, `cfg.web` (see settings.py).

    `cfg.has("mysql")` tells whether an optional section is present; `cfg.instances("beeline")`
    lists the `[beeline:NAME]` sections as {NAME: values}. `cfg.files` are the files read, in order.
    """

    placeholders: List[str] = []    # "file: [section] key: ..." where the example's placeholder is left

    def __init__(self, path: Optional[Path], values: Dict[str, Dict[str, Any]], present: Iterable[str],
                 files: Sequence[Path] = (), secret_files: Iterable[Path] = ()):
        self.path = path
        self._values = values
        self._present = set(present)
        self.files: List[Path] = list(files) or ([path] if path else [])
        self.secret_files = set(secret_files)   # files that hold a secret value
        self._views: Dict[str, Any] = {}

    def __getitem__(self, section: str) -> Dict[str, Any]:
        if section not in self._values:
            raise KeyError(f"{self.path}: section [{section}] is not configured")
        return self._values[section]

    def has(self, section: str) -> bool:
        return section in self._present

    def get(self, section: str, key: str, default: Any = None) -> Any:
        return self._values.get(section, {}).get(key, default)

    def get_section(self, section: str) -> Dict[str, Any]:
        """The section's values (defaults when the section is absent), {} for unknown names."""
        return self._values.get(section, {})

    def instances(self, kind: str) -> Dict[str, Dict[str, Any]]:
        out = {}
        for name, vals in self._values.items():
            if name.startswith(kind + ":"):
                out[name.split(":", 1)[1]] = vals
        return dict(sorted(out.items()))

    def sections(self) -> List[str]:
        return sorted(self._present)

    def ami_credentials(self, section: str) -> Tuple[str, str]:
        """(user, secret) for AMI on behalf of SECTION: its own ami_user / ami_secret when set,
        else [asterisk]'s."""
        own = self._values.get(section, {})
        if own.get("ami_user"):
            return own["ami_user"], own.get("ami_secret", "")
        a = self._values["asterisk"]
        return a.get("ami_user", ""), a.get("ami_secret", "")

    def _view(self, section: str) -> Any:
        if section not in self._views:
            from .settings import VIEWS, view
            self._views[section] = view(VIEWS[section], self[section])
        return self._views[section]

    @property
    def general(self):
        return self._view("general")

    @property
    def log(self):
        return self._view("log")

    @property
    def asterisk(self):
        return self._view("asterisk")

    @property
    def web(self):
        return self._view("web")

    @property
    def data_dir(self) -> Path:
        return self._values["general"]["data_dir"]


def env_name(section: str, key: str) -> str:
    return ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", f"{section}_{key}").upper()


def resolve_path(explicit: Optional[str] = None) -> Path:
    return Path(explicit or os.environ.get(ENV_CONFIG) or DEFAULT_PATH)


def dropin_files(main: Path) -> List[Path]:
    """conf.d/*.ini beside the main file, in name order."""
    folder = main.parent / DROPIN_DIR
    try:
        return sorted(p for p in folder.iterdir() if p.suffix == ".ini" and p.is_file())
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as e:
        raise ConfigError([f"{folder}: cannot read the drop-in folder: {e}"]) from None


def _schema_for(section_name: str) -> Optional[Section]:
    sch = schema()
    if section_name in sch and not sch[section_name].multi:
        return sch[section_name]
    kind, sep, inst = section_name.partition(":")
    if sep and kind in sch and sch[kind].multi and re.fullmatch(INSTANCE_NAME, inst):
        return sch[kind]
    return None


# NAME of [kind:NAME] becomes part of file paths (temp folders, lock files): no dots, no slashes,
# so "." or ".." can never make a derived path the data folder itself or its parent.
INSTANCE_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]*"


def _parser() -> configparser.ConfigParser:
    # `key = value   ; comment` as the docs write it: `;` or `#` after whitespace starts a comment.
    parser = configparser.ConfigParser(interpolation=None, default_section="__no_defaults__",
                                       strict=True, empty_lines_in_values=False,
                                       inline_comment_prefixes=(";", "#"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive names
    return parser


def parse_text(text: str, path: Optional[Path], environ: Optional[Dict[str, str]] = None) -> Config:
    """Validate one file's ini text; raise ConfigError listing every problem."""
    return parse_sources([(path, text)], path, environ)


def parse_sources(sources: Sequence[Tuple[Optional[Path], str]], path: Optional[Path],
                  environ: Optional[Dict[str, str]] = None) -> Config:
    """Validate the ini texts of the main file and its drop-ins, merged in order (a later file's
    key wins). Every problem names the file it comes from."""
    env_vars: Mapping[str, str] = os.environ if environ is None else environ
    raw: Dict[str, Dict[str, Tuple[str, str]]] = {}    # section -> key -> (value, file)
    section_file: Dict[str, str] = {}                  # section -> first file that has it
    problems: List[str] = []
    for src_path, text_ in sources:
        where = str(src_path) if src_path else "<config>"
        parser = _parser()
        try:
            parser.read_string(text_, source=where)
        except configparser.Error as e:
            problems.append(f"{where}: not a valid ini file: {e}".replace("\n", " "))
            continue
        for name in parser.sections():
            section_file.setdefault(name, where)
            sec = raw.setdefault(name, {})
            for key in parser.options(name):
                sec[key] = (parser.get(name, key), where)
    main_where = str(path) if path else (str(sources[0][0]) if sources and sources[0][0] else "<config>")
    if problems:
        raise ConfigError(problems)

    sch_all = schema()
    values: Dict[str, Dict[str, Any]] = {}
    present = set(raw)
    secret_files = set()
    placeholders: List[str] = []

    for name, keys in raw.items():
        sch = _schema_for(name)
        kind, sep, inst = name.partition(":")
        if sch is None and sep and kind in sch_all and sch_all[kind].multi:
            problems.append(f"{section_file[name]}: [{name}]: section name {inst!r} not allowed: "
                            "expected letters, digits, '_' or '-', starting with a letter or digit")
            continue
        if sch is None:
            known = ", ".join(f"[{k}:NAME]" if s.multi else f"[{k}]" for k, s in sch_all.items())
            problems.append(f"{section_file[name]}: [{name}]: unknown section (known: {known})")
            continue
        for key, (_, where) in keys.items():
            if key not in sch.keys:
                problems.append(f"{where}: [{name}] {key}: unknown key (known: {', '.join(sch.keys)})")

    # Every single section gets its defaults, present or not; multi sections only as written.
    wanted = [n for n, s in sch_all.items() if not s.multi]
    wanted += [n for n in raw if ":" in n and _schema_for(n) is not None]
    for name in wanted:
        sch = _schema_for(name)
        assert sch is not None
        sec_present = name in present
        sec_where = section_file.get(name, main_where)
        vals: Dict[str, Any] = {}
        if sch.required and not sec_present:
            problems.append(f"{main_where}: [{name}]: section missing ({sch.help})")
            continue
        for key, spec in sch.keys.items():
            env = env_name(name, key)
            value: Optional[str] = None
            origin = f"{sec_where}: [{name}] {key}"
            if env in env_vars:
                value = env_vars[env]
                origin = f"{sec_where}: [{name}] {key} (from environment {env})"
            elif sec_present and key in raw[name]:
                value, where = raw[name][key]
                origin = f"{where}: [{name}] {key}"
                if spec.secret and value.strip():
                    secret_files.add(Path(where))
            if value is None:
                if spec.default is None:
                    if sec_present:
                        problems.append(f"{origin}: missing; expected {_expected(spec)}")
                    continue
                value = spec.default
            if "\n" in value or "\r" in value:
                problems.append(f"{origin}: expected a single line, got several (an indented next line "
                                f"continues a value in ini files)")
                continue
            try:
                vals[key] = spec.parse(value)
            except Invalid as e:
                shown = "***" if spec.secret else value
                problems.append(f"{origin}: expected {e}, got {shown!r}")
            found = _placeholder(value)
            if found:
                placeholders.append(f"{origin}: still the example's placeholder {found!r}; put the real value "
                                    f"here or in the environment as {env}")
        if sch.validate and sec_present and len(vals) == len(sch.keys):
            for keys_, problem in sch.validate(vals):
                problems.append(f"{sec_where}: [{name}] {keys_}: {problem}")
        if sch.ami and sec_present and vals.get("ami_user") and not vals.get("ami_secret"):
            problems.append(f"{sec_where}: [{name}] ami_secret: required when ami_user is set "
                            f"(or leave both empty to use [asterisk]'s)")
        values[name] = vals
    if problems:
        raise ConfigError(problems)
    files = [Path(p) for p, _ in sources if p]
    cfg = Config(path, values, present, files, secret_files)
    cfg.placeholders = placeholders
    return cfg


# What `config example` and the docs write where a real value belongs: `config check` refuses them.
_PLACEHOLDERS = (re.compile(r"change-?me", re.I), re.compile(r"^0{4,}(?:-0{4,})*$"),
                 re.compile(r"(?:^|[/@.])example\.(?:com|org|net|ru)\b", re.I))


def _placeholder(raw: str) -> Optional[str]:
    for rx in _PLACEHOLDERS:
        m = rx.search(raw.strip())
        if m:
            return m.group(0).lstrip("/@.")
    return None


def _expected(spec: Key) -> str:
    try:
        spec.parse("")
    except Invalid as e:
        return str(e)
    return "a value"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"{path}: cannot read: {e}"]) from None


def load(explicit: Optional[str] = None, environ: Optional[Dict[str, str]] = None) -> Config:
    path = resolve_path(explicit)
    if not path.exists():
        raise ConfigError([f"{path}: config file not found (create it with `asterisk-kit config example > {path}`,"
                           f" or point --config / {ENV_CONFIG} at another file)"])
    sources: List[Tuple[Optional[Path], str]] = [(path, _read(path))]
    sources += [(p, _read(p)) for p in dropin_files(path)]
    return parse_sources(sources, path, environ)


def example_text() -> str:
    """The example file, generated from the schema so it can never drift from the code: [asterisk]
    active, every other section commented out. Uncommenting a section (removing one `#` from each
    of its lines) gives a valid section; its help lines stay comments (`##`)."""
    lines = ["# asterisk-kit configuration: /etc/asterisk-kit/asterisk-kit.ini",
             "# Generated by `asterisk-kit config example`. Check it with `asterisk-kit config check`.",
             "# Any key can be overridden from the environment: ASTERISK_KIT_<SECTION>_<KEY>,",
             "# e.g. ASTERISK_KIT_ASTERISK_AMI_SECRET. Keep secrets there or keep this file mode 0640.",
             f"# More files: {DROPIN_DIR}/*.ini beside this one are read after it, in name order.",
             "# Every section but [asterisk] is commented out: remove one `#` from each line of a section",
             "# to use it. A key left out takes the default shown.", ""]
    for name, sch in schema().items():
        if not sch.example:
            continue
        active = sch.required
        c = "" if active else "#"
        header = f"[{name}:main]" if sch.multi else f"[{name}]"
        lines.append(f"# {header} {sch.help}")
        if sch.multi:
            lines.append(f"# One [{name}:NAME] section per instance; NAME is letters, digits, _ and - "
                         f"(starting with a letter or digit)")
        lines.append(c + header)
        for key, spec in sch.keys.items():
            lines.append(f"{c}# {spec.help}" + ("" if spec.default is not None else " Required."))
            value = spec.example if spec.example is not None else (spec.default or "")
            lines.append(f"{c}{key} = {value}")
        lines.append("")
    return "\n".join(lines)

