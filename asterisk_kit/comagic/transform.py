"""Call rows -> typed Arrow table, and the one table definition both destinations use.

The column types are declared, never inferred: a day whose values happen to be all null must give
the same table as any other day, and BigQuery must get the schema it was created with. Fields
that are not in FIELD_TYPES are kept as STRING. pyarrow is imported inside functions.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence

PARTITION = "PARTITION_DATE"

# BigQuery type of each known get.calls_report field (times are the account's wall-clock time
# without a zone, hence DATETIME, not TIMESTAMP). Lists are REPEATED STRING.
_INT = ("id communication_number communication_id wait_duration total_wait_duration talk_duration "
        "clean_talk_duration total_duration postprocess_duration campaign_id site_id visitor_id "
        "person_id visits_count visitor_first_campaign_id scenario_id last_answered_employee_id "
        "first_answered_employee_id").split()
FIELD_TYPES: Dict[str, str] = {**{f: "INTEGER" for f in _INT},
                               "start_time": "DATETIME", "finish_time": "DATETIME",
                               "is_lost": "BOOLEAN", "is_transfer": "BOOLEAN", "sale_cost": "FLOAT",
                               "tags": "REPEATED", "attributes": "REPEATED"}


class TransformError(ValueError):
    pass


@dataclass(frozen=True)
class Column:
    name: str
    type: str          # INTEGER, FLOAT, BOOLEAN, STRING, DATETIME, DATE
    repeated: bool = False

    def duckdb_type(self) -> str:
        base = {"INTEGER": "BIGINT", "FLOAT": "DOUBLE", "BOOLEAN": "BOOLEAN", "STRING": "VARCHAR",
                "DATETIME": "TIMESTAMP", "DATE": "DATE"}[self.type]
        return base + "[]" if self.repeated else base


def table_columns(fields: Sequence[str]) -> List[Column]:
    cols = []
    for f in fields:
        t = FIELD_TYPES.get(f, "STRING")
        cols.append(Column(f, "STRING", True) if t == "REPEATED" else Column(f, t))
    cols.append(Column(PARTITION, "DATE"))
    return cols


def bigquery_schema(columns: Sequence[Column]):
    from google.cloud import bigquery
    return [bigquery.SchemaField(c.name, c.type, mode="REPEATED" if c.repeated else
                                 ("REQUIRED" if c.name in ("id", "start_time", PARTITION) else "NULLABLE"))
            for c in columns]


def arrow_schema(columns: Sequence[Column]):
    import pyarrow as pa
    m = {"INTEGER": pa.int64(), "FLOAT": pa.float64(), "BOOLEAN": pa.bool_(), "STRING": pa.string(),
         "DATETIME": pa.timestamp("us"), "DATE": pa.date32()}
    return pa.schema([pa.field(c.name, pa.list_(pa.string()) if c.repeated else m[c.type]) for c in columns])


def _text(v: Any):
    if v is None or isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else str(v)


def _names(v: Any, field: str) -> List[str]:
    """tags -> their names; attributes -> the strings; null -> [] (BigQuery has no null lists)."""
    if v is None:
        return []
    if not isinstance(v, list):
        raise TransformError(f"{field}: expected a list, got {v!r:.80}")
    out = []
    for item in v:
        if isinstance(item, dict):
            name = item.get("tag_name")
            if name is None:
                raise TransformError(f"{field}: item without tag_name: {item!r:.80}")
            out.append(str(name))
        elif item is not None:
            out.append(str(item))
    return out


def _lists(pa, pc, values: List[Any], field: str):
    """REPEATED STRING: lists of strings as they are; tags (objects) by their names; null -> []."""
    try:
        arr = pa.array(values, type=pa.list_(pa.string()))
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array([_names(v, field) for v in values], type=pa.list_(pa.string()))
    if pc.list_flatten(arr).null_count:     # a null inside a list: _names drops it
        return pa.array([_names(v, field) for v in values], type=pa.list_(pa.string()))
    if arr.null_count == 0:
        return arr
    return pc.if_else(pc.is_null(arr), pa.scalar([], type=arr.type), arr)


def page_table(rows: List[dict], columns: Sequence[Column]):
    """One API page as an Arrow table with exactly COLUMNS (PARTITION_DATE from start_time), built
    column by column with the declared types (no pandas: less CPU per page, nothing to import).
    Compact: Arrow strings take a fraction of the memory of Python objects, which matters for
    100 000+ calls a range. Raises TransformError naming the field and the value, never drops data."""
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = arrow_schema(columns)
    arrays = []
    start = None
    for c in columns:
        if c.name == PARTITION:
            continue
        values = [r.get(c.name) for r in rows]
        try:
            # Arrow's own converters first (C, and strict: True is no integer, 1 no boolean, "1"
            # no float); Python only for what they cannot take.
            if c.repeated:
                arr = _lists(pa, pc, values, c.name)
            elif c.type == "INTEGER":
                arr = pa.array(values)              # inferred, so 1.5 is seen (a cast would truncate it)
                if pa.types.is_floating(arr.type) and not pc.all(pc.equal(pc.floor(arr), arr)).as_py():
                    raise ValueError("not a whole number")
                if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_null(arr.type)):
                    raise TypeError(f"{arr.type} values")
                arr = arr.cast(pa.int64())
            elif c.type == "FLOAT":
                arr = pa.array(values, type=pa.float64())
            elif c.type == "BOOLEAN":
                arr = pa.array(values, type=pa.bool_())
            elif c.type == "DATETIME":
                arr = pc.strptime(pa.array(values, type=pa.string()), format="%Y-%m-%d %H:%M:%S", unit="us")
            else:
                try:
                    arr = pa.array(values, type=pa.string())
                except pa.ArrowTypeError:           # numbers or objects in a text field: as text
                    arr = pa.array([_text(v) for v in values], type=pa.string())
        except TransformError:
            raise
        except (TypeError, ValueError, pa.ArrowException) as e:
            bad = next((v for v in values if v is not None), None)
            raise TransformError(f"field {c.name}: cannot read values as {c.type} (e.g. {bad!r:.80}): {e}") from None
        if c.name == "start_time":
            start = arr
        arrays.append(arr)
    if start is None or start.null_count:
        raise TransformError("a call without start_time cannot be given a day")
    arrays.append(pc.cast(start, pa.date32()))
    return pa.Table.from_arrays(arrays, schema=schema)


def combine(tables, columns: Sequence[Column]):
    """Concatenate page tables and keep each call once (split ranges may overlap at a boundary)."""
    import numpy as np
    import pyarrow as pa
    if not tables:
        return arrow_schema(columns).empty_table()
    t = pa.concat_tables(tables)
    ids = t.column("id").to_numpy()
    _, first = np.unique(ids, return_index=True)
    if len(first) == t.num_rows:
        return t
    return t.take(pa.array(np.sort(first)))


def day_slice(table, day):
    import pyarrow.compute as pc
    return table.filter(pc.equal(table.column(PARTITION), day))
