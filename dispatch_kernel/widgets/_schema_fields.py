"""Form fields generated from a JSON Schema: one input widget per property of an object schema.

string -> Text, integer -> IntText, number -> FloatText, boolean -> Checkbox, enum -> Dropdown,
and anything else (object, array, a union of types, no type) -> a Textarea holding JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets

from . import _format as fmt

UNSET = object()  # "not sent": an optional field left alone, or a placeholder choice
_SIMPLE_KINDS = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}
_LABEL_STYLE = {"description_width": "initial"}


class FieldError(ValueError):
    """A field's text could not be read as a value (e.g. malformed JSON)."""


@dataclass
class SchemaField:
    """One property: its input widget, whether it is required, and how to read its value.

    An optional field is sent only once it has been edited (a blank text counts as unset), so
    leaving it alone lets the function's own default apply.
    """

    name: str
    schema: dict[str, Any]
    kind: str  # string | integer | number | boolean | enum | json
    required: bool
    widget: widgets.Widget
    row: widgets.Widget
    touched: bool = field(default=False)

    def value(self) -> Any:
        """The value to send, or UNSET; FieldError if the text is not a value."""
        if not self.required and not self.touched:
            return UNSET
        raw = self.widget.value
        if self.kind == "enum":
            return UNSET if raw is UNSET else raw
        if self.kind == "json":
            if not raw.strip():
                return UNSET
            try:
                return json.loads(raw)
            except json.JSONDecodeError as exc:
                raise FieldError(f"{self.name}: not valid JSON ({exc})") from None
        if self.kind == "string" and raw == "" and not self.required:
            return UNSET
        return raw

    def _on_edit(self, change: dict[str, Any]) -> None:
        self.touched = True


def fields_for(schema: Any) -> list[SchemaField] | None:
    """One field per property of an object schema; None when the schema is not one."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return None
    required = set(schema.get("required") or [])
    props = schema["properties"]
    # Required fields first, each group in the schema's own order: what must be filled is on top.
    names = [n for n in props if n in required] + [n for n in props if n not in required]
    return [build_field(name, props[name] if isinstance(props[name], dict) else {}, name in required)
            for name in names]


def kind_of(schema: dict[str, Any]) -> str:
    """Which input a property gets."""
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return "enum"
    if "const" in schema:
        return "enum"
    kind = schema.get("type")
    if isinstance(kind, list):  # ["string", "null"] is still a string field
        concrete = [k for k in kind if k != "null"]
        kind = concrete[0] if len(concrete) == 1 else None
    return _SIMPLE_KINDS.get(kind, "json") if isinstance(kind, str) else "json"


def build_field(name: str, schema: dict[str, Any], required: bool) -> SchemaField:
    """The input widget for one property, labelled `name*` when required."""
    kind = kind_of(schema)
    label = f"{name}*" if required else name
    common: dict[str, Any] = {"description": label, "style": _LABEL_STYLE}
    default = schema.get("default", UNSET)
    if kind == "string":
        widget = widgets.Text(value=default if isinstance(default, str) else "", **common)
    elif kind == "integer":
        widget = widgets.IntText(value=default if isinstance(default, int) else 0, **common)
    elif kind == "number":
        widget = widgets.FloatText(value=default if isinstance(default, (int, float)) else 0.0, **common)
    elif kind == "boolean":
        widget = widgets.Checkbox(value=default is not UNSET and bool(default), indent=False, **common)
    elif kind == "enum":
        choices = schema["enum"] if "enum" in schema else [schema["const"]]
        options = [("— choose —" if required else "— not set —", UNSET)]
        options += [(c if isinstance(c, str) else json.dumps(c), c) for c in choices]
        widget = widgets.Dropdown(options=options, value=default if default in choices else UNSET, **common)
    else:
        widget = widgets.Textarea(
            value="" if default is UNSET else json.dumps(default, indent=2),
            placeholder=_json_placeholder(schema), rows=3, **common,
        )
    help_text = _help(schema, kind)
    row = widgets.HBox([widget, widgets.HTML(help_text)]) if help_text else widgets.HBox([widget])
    result = SchemaField(name, schema, kind, required, widget, row)
    widget.observe(result._on_edit, names="value")
    return result


def _help(schema: dict[str, Any], kind: str) -> str:
    parts = []
    if schema.get("description"):
        parts.append(fmt.escape(schema["description"]))
    if kind == "json":
        parts.append(f"JSON {fmt.escape(schema.get('type', 'value'))}")
    return f'<span style="color:#6c757d;font-size:0.85em">{" · ".join(parts)}</span>' if parts else ""


def _json_placeholder(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if kind == "object":
        return '{"key": "value"}'
    if kind == "array":
        return "[1, 2, 3]"
    return "any JSON value"
