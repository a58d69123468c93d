"""InvokeForm: a form built from a function's input schema that checks, then invokes."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import ipywidgets as widgets
import jsonschema

from .._client import Client
from ..model import DispatchError, Function, Run
from . import _format as fmt
from ._base import DispatchWidget, close_tree
from ._run_inspector import RunInspector
from ._schema_fields import UNSET, FieldError, SchemaField, fields_for

log = logging.getLogger(__name__)


class InvokeForm(DispatchWidget, widgets.VBox):
    """One field per property of the function's input schema (required ones marked `*`), or a
    single JSON box when it has none. The Invoke button checks the input against the schema
    first and shows every problem without starting a run; a valid input is invoked and the run
    appears in a RunInspector below, updated when it finishes.
    """

    def __init__(self, client: Client, function: Function | Any, **kwargs: Any) -> None:
        name = getattr(function, "name", function)  # a Function, a FunctionHandle or a name
        record = function if isinstance(function, Function) else client.get_function(name)
        self.client = client
        self.function = record
        self.schema: Any = (record.schema or {}).get("in")
        self.fields: list[SchemaField] | None = fields_for(self.schema)
        self.raw: widgets.Textarea | None = None
        if self.fields is None:
            self.raw = widgets.Textarea(description="input", placeholder='JSON, e.g. {"x": 1}', rows=4,
                                        style={"description_width": "initial"})
            inputs: list[widgets.Widget] = [self.raw]
        else:
            inputs = [f.row for f in self.fields]
        self.title = widgets.HTML(f"<b>Invoke {fmt.escape(record.name)}</b>"
                                  + (" <small>(* required)</small>" if self.fields else ""))
        self.button = widgets.Button(description="Invoke", button_style="primary", icon="play")
        self.messages = widgets.HTML()
        self.result_area = widgets.VBox()
        self.inspector: RunInspector | None = None
        self.last_run: Run | None = None
        self._waiter: threading.Thread | None = None
        self._validator = _validator(self.schema)
        super().__init__(children=[self.title, *inputs, self.button, self.messages, self.result_area],
                         **kwargs)
        self.button.on_click(lambda _button: self.submit())

    def payload(self) -> tuple[Any, list[str]]:
        """The input assembled from the fields, and the problems with it (empty when valid)."""
        problems: list[str] = []
        if self.fields is None:
            assert self.raw is not None
            text = self.raw.value.strip()
            try:
                value = json.loads(text) if text else None
            except json.JSONDecodeError as exc:
                return None, [f"input: not valid JSON ({exc})"]
        else:
            value = {}
            for field in self.fields:
                try:
                    item = field.value()
                except FieldError as exc:
                    problems.append(str(exc))
                    continue
                if item is not UNSET:
                    value[field.name] = item
        if not problems and self._validator is not None:
            problems = [_describe(error) for error in
                        sorted(self._validator.iter_errors(value), key=lambda e: list(e.absolute_path))]
        return value, problems

    def submit(self) -> Run | None:
        """What the button does: check the input; if valid, start a run and follow it.

        Returns the run as started, or None when the input was refused (nothing ran)."""
        value, problems = self.payload()
        if problems:
            self.messages.value = _problems_html(problems)
            return None
        try:
            run = self.client.invoke(self.function.name, value, wait=False)
        except DispatchError as exc:  # e.g. the function is not ready, or was deleted
            self.messages.value = _problems_html([str(exc)])
            return None
        self.messages.value = ""
        self.last_run = run
        if self.inspector is not None:
            close_tree(self.inspector)
        self.inspector = RunInspector(run)
        self.result_area.children = [self.inspector]
        # The run goes on without blocking the kernel; this thread shows it once it has finished.
        self._waiter = threading.Thread(target=self._follow, args=(run.id, self.inspector),
                                        name="dispatch-invoke-form", daemon=True)
        self._waiter.start()
        return run

    def wait(self, timeout: float | None = None) -> Run | None:
        """The last run once it has finished (what the inspector then shows)."""
        if self._waiter is not None:
            self._waiter.join(timeout)
        return self.last_run

    def _follow(self, run_id: str, inspector: RunInspector) -> None:
        try:
            run = self.client.wait_run(run_id)
        except Exception:  # never print from a thread: log it, the inspector keeps the last state
            log.exception("following run %s failed", run_id)
            return
        if self.last_run is not None and self.last_run.id == run_id:
            self.last_run = run
        inspector.update(run)

    def _static_text(self) -> str:
        lines = [f"invoke {self.function.name}"]
        if self.fields is None:
            lines.append("  input: JSON")
        for field in self.fields or []:
            lines.append(f"  {field.name}{'*' if field.required else ''}: {field.kind}")
        if self.inspector is not None:
            lines.append(self.inspector._static_text())
        return "\n".join(lines)

    def _static_html(self) -> str:
        if self.fields is None:
            body = fmt.escape("input: any JSON" if not self.schema else "input: JSON (see schema)")
        else:
            rows = [(f.name + ("*" if f.required else ""), f.kind, f.schema.get("description", ""))
                    for f in self.fields]
            body = fmt.html_table(("field", "type", "description"), rows)
        result = self.inspector._static_html() if self.inspector is not None else ""
        return f"<div>{self.title.value}{body}{self.messages.value}{result}</div>"


def _validator(schema: Any) -> jsonschema.Draft202012Validator | None:
    # The same checks the core makes when the run arrives (same draft, same format checker),
    # made here first so a bad input never becomes a run.
    if not schema:
        return None
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def _describe(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "input"
    return f"{where}: {error.message}"


def _problems_html(problems: list[str]) -> str:
    items = "".join(f"<li>{fmt.escape(p)}</li>" for p in problems)
    return f'<div style="color:#dc3545"><b>Not sent:</b><ul style="margin:0">{items}</ul></div>'
