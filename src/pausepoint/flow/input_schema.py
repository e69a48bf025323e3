"""A set of inputs described as JSON Schema, for forms and API clients."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pausepoint.flow.coercion import coerce_value

if TYPE_CHECKING:
    from pausepoint.flow.inputs import InputSpec

_FORMATS = {
    "DATE": "date",
    "DATETIME": "date-time",
    "TIME": "time",
    "DURATION": "duration",
    "URI": "uri",
    "EMAIL": "email",
}
_JSON_TYPES = {
    "STRING": "string",
    "SECRET": "string",
    "INT": "integer",
    "FLOAT": "number",
    "BOOLEAN": "boolean",
    "DATE": "string",
    "DATETIME": "string",
    "TIME": "string",
    "DURATION": "string",
    "URI": "string",
    "EMAIL": "string",
    "FILE": "string",
}


def _type_schema(spec: InputSpec) -> dict[str, Any]:
    kind = spec.kind
    schema: dict[str, Any] = {}
    if kind in _JSON_TYPES:
        schema["type"] = _JSON_TYPES[kind]
    if kind in _FORMATS:
        schema["format"] = _FORMATS[kind]
    if kind == "SELECT":
        if spec.allow_custom_value:
            schema["examples"] = list(spec.values or [])
        else:
            schema["enum"] = list(spec.values or [])
    elif kind == "MULTISELECT":
        schema.update(type="array", items={"enum": list(spec.values or [])}, uniqueItems=True)
    elif kind == "ARRAY":
        item = _type_schema(spec.item_spec())
        schema.update(type="array", items=item)
    elif kind == "SECRET":
        schema.update(writeOnly=True, format="password")
    elif kind == "YAML":
        schema["contentMediaType"] = "application/yaml"
    elif kind == "FILE":
        schema["contentMediaType"] = "application/octet-stream"
    elif kind == "OBJECT":
        fields = inputs_json_schema(spec.properties or [])
        fields.pop("$schema")
        schema.update(fields)
    elif kind == "TABLE":
        row = inputs_json_schema(spec.columns or [])
        row.pop("$schema")
        schema.update(type="array", items=row)
        if spec.rows is not None and spec.rows.min is not None:
            schema["minItems"] = spec.rows.min
        if spec.rows is not None and spec.rows.max is not None:
            schema["maxItems"] = spec.rows.max
    elif kind == "JSON" and isinstance(spec.json_schema, dict):
        schema.update({k: v for k, v in spec.json_schema.items() if k != "$schema"})
    if spec.validator is not None:
        schema["pattern"] = f"^(?:{spec.validator})$"
    if kind in ("INT", "FLOAT"):
        bare = spec.model_copy(update={"min": None, "max": None})
        if spec.min is not None:
            schema["minimum"] = coerce_value(bare, spec.min)
        if spec.max is not None:
            schema["maximum"] = coerce_value(bare, spec.max)
    return schema


def _property_schema(spec: InputSpec) -> dict[str, Any]:
    schema: dict[str, Any] = {"title": spec.display_name or spec.path[-1]}
    if spec.description:
        schema["description"] = spec.description
    schema.update(_type_schema(spec))
    if spec.defaults is not None and spec.kind != "SECRET":
        with contextlib.suppress(ValueError):
            schema["default"] = coerce_value(spec, spec.defaults)
    schema["x-pausepoint-type"] = spec.type
    return schema


def _object_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {}, "required": [], "additionalProperties": False}


def inputs_json_schema(
    specs: Sequence[InputSpec], *, title: str | None = None, description: str | None = None
) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) object describing what :func:`coerce_inputs` accepts.

    - one property per input, nested ``type: object`` properties for dotted ids;
    - ``required`` lists the inputs that are required and have no ``defaults``
      (a group is required when one of its members is);
    - each property has ``title`` (``displayName`` or the id), ``description``,
      ``default`` (the coerced default; never for SECRET), ``x-pausepoint-type``
      (the declared type, e.g. ``SELECT``, for picking a widget) and per type:
      ``format`` (``date``, ``date-time``, ``time``, ``duration``, ``uri``,
      ``email``), ``enum`` for SELECT/ENUM, ``type: array`` with ``items.enum``
      and ``uniqueItems`` for MULTISELECT, ``items`` from ``itemType`` for ARRAY,
      ``writeOnly`` with ``format: password`` for SECRET, ``pattern`` from
      ``validator``, ``minimum``/``maximum`` for INT and FLOAT, an object of its
      fields for OBJECT, an array of rows for TABLE. JSON inputs accept any
      value their ``jsonSchema`` (if any) accepts; YAML inputs any value.
    """
    root = _object_schema()
    root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    if title:
        root["title"] = title
    if description:
        root["description"] = description
    for spec in specs:
        target = root
        parents = spec.path[:-1]
        needed = spec.required and spec.defaults is None
        for part in parents:
            if needed and part not in target["required"]:
                target["required"].append(part)
            target = target["properties"].setdefault(part, _object_schema())
        target["properties"][spec.path[-1]] = _property_schema(spec)
        if needed:
            target["required"].append(spec.path[-1])
    return root
