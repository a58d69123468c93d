"""What the command prints: tables and details of each kind of entity, as text, JSON or YAML.

Each kind the command shows is one `Kind`: how to list and get it through the client, its table
columns and row, and its details; `dispatch get` reads them from KINDS.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..drivers.choice import describe_drivers
from ..entities import Api, EventSource, Organization, Policy, ServiceAccount, Subscription
from ..model import BaseImage, Function, Image, Run, RunStatus, Secret


def when(stamp: float | None) -> str:
    """A timestamp as local time, or "-"."""
    return "-" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _duration(run: Run) -> str:
    seconds = run.duration
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f}ms" if seconds < 1 else f"{seconds:.2f}s"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Rows under headers, in columns as wide as their widest cell."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in [headers, *rows]]
    return "\n".join(lines)


def details(pairs: list[tuple[str, Any]]) -> str:
    """Name-value lines; a value that is not text is shown as JSON, a long one on its own lines."""
    width = max(len(k) for k, _ in pairs)
    lines = []
    for key, value in pairs:
        if not isinstance(value, str):
            value = json.dumps(value, default=str)
        first, *rest = value.splitlines() or [""]
        lines.append(f"{key.ljust(width)}  {first}")
        lines.extend(" " * (width + 2) + line for line in rest)
    return "\n".join(lines)


def _listed(values: list[str]) -> str:
    return ", ".join(values) or "-"


def _cors(cors: bool | dict[str, Any]) -> str:
    if not cors:
        return "no"
    return "any origin" if cors is True else ",".join(cors.get("origins") or ["*"])


RUN_COLUMNS = ["ID", "FUNCTION", "STATUS", "DURATION", "QUEUED", "ERROR"]


def run_row(r: Run) -> list[str]:
    """A run as a row of RUN_COLUMNS."""
    error = f"{r.error.type}: {r.error.message.splitlines()[0] if r.error.message else ''}" if r.error else ""
    if len(error) > 60:
        error = error[:57] + "..."
    return [r.id, r.function, RunStatus(r.status).value, _duration(r), when(r.queued), error]


def run_details(run: Run) -> str:
    """Everything of one run: input, output, times, error and its stack trace, logs."""
    pairs: list[tuple[str, Any]] = [
        ("id", run.id), ("function", run.function), ("status", RunStatus(run.status).value),
        ("input", run.input), ("output", run.output), ("queued", when(run.queued)),
        ("duration", _duration(run)), ("cold start", "yes" if run.cold_start else "no"),
    ]
    if run.error:
        pairs.append(("error", f"{run.error.type}: {run.error.message}"))
        if run.error.stacktrace:
            pairs.append(("stacktrace", run.error.stacktrace.rstrip()))
    for stream in ("stdout", "stderr"):
        if run.logs.get(stream):
            pairs.append((stream, run.logs[stream].rstrip()))
    return details(pairs)


DEAD_LETTER_COLUMNS = ["ID", "SUBSCRIPTION", "EVENT TYPE", "EVENT ID", "ATTEMPTS", "ERROR"]


def dead_letter_row(letter: dict[str, Any]) -> list[str]:
    """A dead letter as a row of DEAD_LETTER_COLUMNS."""
    event = letter.get("event") or {}
    return [letter["id"], letter["subscription"], str(event.get("type", "-")), str(event.get("id", "-")),
            str(letter["attempts"]), " ".join(str(letter.get("error") or "-").split())]


@dataclass(frozen=True)
class Kind:
    """One kind of entity as `dispatch get` shows it."""

    list: Callable[[Any], list[Any]]  # client -> entities
    get: Callable[[Any, str], Any]  # client, name -> entity
    delete: Callable[[Any, str], None]  # client, name
    columns: list[str]
    row: Callable[[Any], list[str]]
    details: Callable[[Any], list[tuple[str, Any]]]


KINDS: dict[str, Kind] = {
    "function": Kind(
        lambda c: c.list_functions(), lambda c, n: c.get_function(n), lambda c, n: c.delete_function(n),
        ["NAME", "STATUS", "HANDLER", "DRIVER", "REVISION", "MODIFIED"],
        lambda f: [f.name, str(f.status), f.handler, f.driver, str(f.revision), when(f.modified)],
        lambda f: [("name", f.name), ("status", str(f.status)), ("reason", f.reason or "-"),
                   ("handler", f.handler), ("convention", f.convention), ("driver", f.driver),
                   ("drivers", describe_drivers(f.drivers, f.driver_status) or "-"),
                   ("image", f.image), ("revision", str(f.revision)), ("requirements", _listed(f.requirements)),
                   ("secrets", _listed(f.secrets)),
                   ("timeout", "-" if f.timeout is None else f"{f.timeout:g}s"), ("scaling", f.scaling),
                   ("schema", f.schema or "-"), ("modified", when(f.modified))]),
    "image": Kind(
        lambda c: c.list_images(), lambda c, n: c.get_image(n), lambda c, n: c.delete_image(n),
        ["NAME", "STATUS", "BASE", "IMAGE", "MODIFIED"],
        lambda i: [i.name, str(i.status), i.base_image, i.image_url or "-", when(i.modified)],
        lambda i: [("name", i.name), ("status", str(i.status)), ("reason", i.reason or "-"),
                   ("base image", i.base_image), ("requirements", _listed(i.requirements)),
                   ("system packages", _listed(i.system_packages)), ("image", i.image_url or "-"),
                   ("modified", when(i.modified))]),
    "base-image": Kind(
        lambda c: c.list_base_images(), lambda c, n: c.get_base_image(n), lambda c, n: c.delete_base_image(n),
        ["NAME", "STATUS", "LANGUAGE", "PYTHON", "IMAGE", "MODIFIED"],
        lambda b: [b.name, str(b.status), b.language, b.python or "-", b.image_url, when(b.modified)],
        lambda b: [("name", b.name), ("status", str(b.status)), ("reason", b.reason or "-"),
                   ("language", b.language), ("python", b.python or "-"), ("image", b.image_url),
                   ("digest", b.digest or "-"), ("modified", when(b.modified))]),
    "subscription": Kind(
        lambda c: c.list_subscriptions(), lambda c, n: c.get_subscription(n), lambda c, n: c.delete_subscription(n),
        ["NAME", "EVENT TYPE", "FUNCTION", "FILTERS", "MAX ATTEMPTS", "MODIFIED"],
        lambda s: [s.name, s.event_type, s.function, ",".join(f"{k}={v}" for k, v in sorted(s.filters.items())) or "-",
                   str(s.max_attempts), when(s.modified)],
        lambda s: [("name", s.name), ("event type", s.event_type), ("function", s.function),
                   ("filters", s.filters or "-"), ("max attempts", str(s.max_attempts)),
                   ("modified", when(s.modified))]),
    "eventsource": Kind(
        lambda c: c.list_event_sources(), lambda c, n: c.get_event_source(n), lambda c, n: c.delete_event_source(n),
        ["NAME", "TYPE", "STATUS", "SECRETS", "MODIFIED"],
        lambda e: [e.name, e.type, f"{e.status} ({e.reason})" if e.reason else (e.status or "-"),
                   _listed(e.secrets), when(e.modified)],
        lambda e: [("name", e.name), ("type", e.type), ("status", e.status or "-"), ("reason", e.reason or "-"),
                   ("config", e.public_dict()["config"]), ("secrets", _listed(e.secrets)),
                   ("modified", when(e.modified))]),
    "api": Kind(
        lambda c: c.list_apis(), lambda c, n: c.get_api(n), lambda c, n: c.delete_api(n),
        ["NAME", "FUNCTION", "METHODS", "PATHS", "AUTH", "CORS", "ENABLED"],
        lambda a: [a.name, a.function, ",".join(a.methods), " ".join(a.paths), a.auth, _cors(a.cors),
                   "yes" if a.enabled else "no"],
        lambda a: [("name", a.name), ("function", a.function), ("methods", ", ".join(a.methods)),
                   ("paths", _listed(a.paths)), ("hosts", _listed(a.hosts)), ("protocols", _listed(a.protocols)),
                   ("auth", a.auth), ("cors", a.cors), ("enabled", "yes" if a.enabled else "no"),
                   ("modified", when(a.modified))]),
    "secret": Kind(
        lambda c: c.list_secrets(), lambda c, n: c.get_secret(n), lambda c, n: c.delete_secret(n),
        ["NAME", "KEYS", "MODIFIED"],
        lambda s: [s.name, ", ".join(s.keys), when(s.modified)],
        lambda s: [("name", s.name), ("keys", ", ".join(s.keys))]),
}
PLURALS = {"functions": "function", "images": "image", "base-images": "base-image",
           "subscriptions": "subscription", "eventsources": "eventsource", "secrets": "secret", "apis": "api"}


def data(value: Any) -> Any:
    """`value` as JSON-ready data: entities as their REST form, never a secret's ciphertext."""
    if isinstance(value, list):
        return [data(v) for v in value]
    if isinstance(value, (EventSource, Function)):
        return value.public_dict()
    if isinstance(value, Secret):
        shown = value.public_dict()
        if value.values:
            shown["values"] = value.values
        return shown
    if isinstance(value, (Api, BaseImage, Image, Subscription, Run, Organization, Policy, ServiceAccount)):
        return value.to_dict()
    return value


def emit(args: argparse.Namespace, value: Any, text: Callable[[], str]) -> None:
    """Print `value` as the chosen output: `text()` for a table, else JSON or YAML."""
    if args.output == "json":
        print(json.dumps(data(value), indent=2, default=str))
    elif args.output == "yaml":
        import yaml

        print(yaml.safe_dump(data(value), sort_keys=False, default_flow_style=False).rstrip())
    else:
        print(text())


def show(args: argparse.Namespace, kind: Kind, client: Any,
         get: Callable[[Any, str], Any] | None = None) -> None:
    """`dispatch get`'s answer: entity `args.name` in full (read with `get`, else the kind's
    own getter), or without a name a table of every entity of the kind."""
    if args.name is not None:
        entity = (get or kind.get)(client, args.name)
        emit(args, entity, lambda: details(kind.details(entity)))
        return
    entities = kind.list(client)
    emit(args, entities, lambda: table(kind.columns, [kind.row(e) for e in entities]))


__all__ = ["DEAD_LETTER_COLUMNS", "KINDS", "PLURALS", "RUN_COLUMNS", "Kind", "data", "dead_letter_row", "details", "emit", "run_details", "run_row",
           "show", "table", "when"]
