"""Markdown reference of every config section and key, generated from config.schema()
(the core's and the capabilities' settings modules).

`python -m asterisk_kit.configdoc > docs/config.md`; a test keeps docs/config.md equal to it.
"""
from __future__ import annotations

from .config import env_name, schema


def markdown() -> str:
    out = ["# Configuration reference", "",
           "One ini file, `/etc/asterisk-kit/asterisk-kit.ini` by default (`--config PATH` or "
           "`ASTERISK_KIT_CONFIG`). `asterisk-kit config example` prints a commented example; "
           "`asterisk-kit config check` validates a file. Every key can be overridden from the "
           "environment as `ASTERISK_KIT_<SECTION>_<KEY>` (section and key upper-cased, other "
           "characters as `_`), which is the way to keep secrets out of the file.",
           "",
           "Comments: a line starting with `#` or `;`, and an inline comment `key = value   ; comment` "
           "(`;` or `#` after whitespace ends the value; one without a space before, as in "
           "`\\1; ^(\\d{7})$`, stays part of it). Environment values are taken whole. "
           "`config check` also refuses the example's placeholders (`change-me`, all-zero tokens, "
           "`example.com`-style hosts) with exit code 2, naming each; the jobs themselves do not look "
           "for them.",
           "", "Generated from the code (`python -m asterisk_kit.configdoc`).", ""]
    for name, sec in schema().items():
        title = f"[{name}:NAME]" if sec.multi else f"[{name}]"
        flags = "required section" if sec.required else "optional section"
        if sec.multi:
            flags = "any number of instance sections"
        out += [f"## `{title}`", "", f"{sec.help} ({flags})", "",
                "| key | default | meaning | environment |", "|---|---|---|---|"]
        for key, spec in sec.keys.items():
            default = "*required*" if spec.default is None else (f"`{spec.default}`" if spec.default else "(empty)")
            env = env_name(name.upper() + ("_NAME" if sec.multi else ""), key)
            meaning = spec.help.replace("|", "\\|") + (" *Secret.*" if spec.secret else "")
            out.append(f"| `{key}` | {default} | {meaning} | `{env}` |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(), end="")
