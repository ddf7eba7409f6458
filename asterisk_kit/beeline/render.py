"""The JSON file written beside each mp3, from a Jinja template.

The shipped template reproduces the old script's file byte for byte: json.dumps of
{"employeeId", "direction", "language", "respondentNumber", "dateTime"} in that order, UTF-8 with
non-ASCII kept, dateTime the call time in the server's (or [beeline:*] timezone's) local time
without an offset. A custom template gets the same variables plus `record` (the API's object) and
must render valid JSON (checked, so a typo never reaches the customer).
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Dict

DEFAULT_TEMPLATE = (
    '{"employeeId": {{ employee_id | json }}, "direction": {{ direction | json }}, '
    '"language": "ru", "respondentNumber": {{ phone | json }}, "dateTime": {{ date_time | json }}}'
)

# Exactly the old script's comparison (case-sensitive): the customer's consumers have only ever seen
# "in" for INBOUND, "out" for OUTBOUND and "" for anything else, and the API documents upper case.
DIRECTIONS = {"INBOUND": "in", "OUTBOUND": "out"}


class TemplateError(Exception):
    pass


def _json(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False)


def call_time(epoch_ms: Any, tz_name: str) -> dt.datetime:
    t = dt.datetime.fromtimestamp(int(epoch_ms) / 1000, dt.timezone.utc)
    if tz_name == "local":
        return t.astimezone().replace(tzinfo=None)
    from zoneinfo import ZoneInfo
    return t.astimezone(ZoneInfo(tz_name)).replace(tzinfo=None)


def variables(record: Dict[str, Any], tz_name: str) -> Dict[str, Any]:
    abonent = record.get("abonent")
    if not isinstance(abonent, dict):
        abonent = {}
    when = call_time(record["date"], tz_name)
    return {
        "record": record, "id": str(record["id"]),
        "employee_id": abonent.get("phone"),
        "direction": DIRECTIONS.get(str(record.get("direction") or ""), ""),
        "phone": record.get("phone"),
        "date_time": when.strftime("%Y-%m-%dT%H:%M:%S"),
        "call_time": when,
    }


class Renderer:
    def __init__(self, template_path: str = "", tz_name: str = "local"):
        import jinja2
        self.tz_name = tz_name
        env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        env.filters["json"] = _json
        if template_path:
            try:
                with open(template_path, encoding="utf-8") as f:
                    text = f.read()
            except OSError as e:
                raise TemplateError(f"JSON template {template_path}: {e.strerror or e}") from None
        else:
            text = DEFAULT_TEMPLATE
        self.where = template_path or "(shipped template)"
        try:
            self.template = env.from_string(text)
        except jinja2.TemplateSyntaxError as e:
            raise TemplateError(f"JSON template {self.where} line {e.lineno}: {e.message}") from None

    def render(self, record: Dict[str, Any]) -> bytes:
        import jinja2
        try:
            text = self.template.render(**variables(record, self.tz_name))
        except (jinja2.TemplateError, KeyError, ValueError, TypeError) as e:
            raise TemplateError(f"JSON template {self.where}, record {record.get('id')}: "
                                f"{type(e).__name__}: {e}") from None
        try:
            json.loads(text)
        except ValueError as e:
            raise TemplateError(f"JSON template {self.where} rendered invalid JSON for record "
                                f"{record.get('id')}: {e}") from None
        return text.encode("utf-8")
