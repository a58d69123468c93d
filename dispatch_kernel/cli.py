"""`dispatch`: the command line, modelled on VMware Dispatch's.

    dispatch login URL --token T                  remember a server (~/.dispatch/config.json, 0600)
    dispatch create function NAME FILE.py [--handler H] [--schema-in F] [--timeout 30s] [--secret S]
                                          [--requirements R ...]
    dispatch create secret NAME FILE.json
    dispatch create base-image NAME REGISTRY/REPOSITORY:TAG [--language python3]
    dispatch create image NAME --base BASE [--requirements R ...] [--system-packages P ...]
    dispatch create -f spec.yaml                  multi-document YAML, each with `kind:`
    dispatch update -f spec.yaml
    dispatch get functions | function NAME | runs [FN] [--last] [--follow] | secrets
    dispatch exec NAME [--input JSON] [--wait]
    dispatch get images | image NAME | base-images | base-image NAME
    dispatch delete function|secret|image|base-image NAME
    dispatch emit TYPE [--data JSON] [--source S]
    dispatch create subscription FN --event-type T [--name N] [--filter attr=value ...]
    dispatch create eventsource NAME --type schedule|webhook|vcenter [--config JSON] [--secret S ...]
    dispatch get subscriptions | subscription NAME | eventsources | eventsource NAME
    dispatch delete subscription|eventsource NAME

Without a login (or --url, or DISPATCH_URL) it works on the embedded default: a core in this
process on DISPATCH_HOME. Output is a table, or `-o json` / `-o yaml`. An error is one line on
stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .model import DispatchError, Function, InvalidRequestError, NotFoundError, Run, RunStatus, Secret
from .model import BaseImage, EventSource, Image, Subscription

CONFIG_ENV = "DISPATCH_CONFIG"


class CliError(Exception):
    """A problem worth one line to the user."""


# ------------------------------------------------------------------------------ configuration


def config_path() -> Path:
    """DISPATCH_CONFIG, else ~/.dispatch/config.json."""
    return Path(os.environ.get(CONFIG_ENV) or Path.home() / ".dispatch" / "config.json").expanduser()


def load_config() -> dict[str, Any]:
    path = config_path()
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from None


def save_config(config: dict[str, Any]) -> Path:
    """Write the config readable by its owner only (it holds a token)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(config, handle, indent=2)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT
    return path


def open_client(args: argparse.Namespace):
    """The server client (--url, DISPATCH_URL, or the login), else the embedded default."""
    config = load_config()
    url, token = args.url, args.token
    if url is None and os.environ.get("DISPATCH_URL"):
        url, token = os.environ["DISPATCH_URL"], token or os.environ.get("DISPATCH_TOKEN")
    if url is None and config.get("url"):
        url, token = config["url"], token or config.get("token")
    if url:
        from .http_client import HttpClient

        return HttpClient(url, token)
    from .client import LocalClient
    from .core import Dispatch
    from .settings import Settings

    return LocalClient(Dispatch(Settings()))  # the embedded default, on DISPATCH_HOME


# ------------------------------------------------------------------------------ output


def _when(stamp: float | None) -> str:
    return "-" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _duration(run: Run) -> str:
    seconds = run.duration
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f}ms" if seconds < 1 else f"{seconds:.2f}s"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in [headers, *rows]]
    return "\n".join(lines)


FUNCTION_COLUMNS = ["NAME", "STATUS", "HANDLER", "DRIVER", "REVISION", "MODIFIED"]
RUN_COLUMNS = ["ID", "FUNCTION", "STATUS", "DURATION", "QUEUED", "ERROR"]


def _function_row(f: Function) -> list[str]:
    return [f.name, str(f.status), f.handler, f.driver, str(f.revision), _when(f.modified)]


def _run_row(r: Run) -> list[str]:
    error = f"{r.error.type}: {r.error.message.splitlines()[0] if r.error.message else ''}" if r.error else ""
    if len(error) > 60:
        error = error[:57] + "..."
    return [r.id, r.function, RunStatus(r.status).value, _duration(r), _when(r.queued), error]


IMAGE_COLUMNS = ["NAME", "STATUS", "BASE", "IMAGE", "MODIFIED"]
BASE_IMAGE_COLUMNS = ["NAME", "STATUS", "LANGUAGE", "PYTHON", "IMAGE", "MODIFIED"]


def _image_row(i: Image) -> list[str]:
    return [i.name, str(i.status), i.base_image, i.image_url or "-", _when(i.modified)]


def _base_image_row(b: BaseImage) -> list[str]:
    return [b.name, str(b.status), b.language, b.python or "-", b.image_url, _when(b.modified)]


SUBSCRIPTION_COLUMNS = ["NAME", "EVENT TYPE", "FUNCTION", "FILTERS", "MAX ATTEMPTS", "MODIFIED"]
EVENT_SOURCE_COLUMNS = ["NAME", "TYPE", "STATUS", "SECRETS", "MODIFIED"]


def _subscription_row(s: Subscription) -> list[str]:
    filters = ",".join(f"{k}={v}" for k, v in sorted(s.filters.items())) or "-"
    return [s.name, s.event_type, s.function, filters, str(s.max_attempts), _when(s.modified)]


def _event_source_row(e: EventSource) -> list[str]:
    status = f"{e.status} ({e.reason})" if e.reason else (e.status or "-")
    return [e.name, e.type, status, ", ".join(e.secrets) or "-", _when(e.modified)]


def _data(value: Any) -> Any:
    if isinstance(value, list):
        return [_data(v) for v in value]
    if isinstance(value, Subscription):
        return value.to_dict()
    if isinstance(value, EventSource):
        data = value.to_dict()
        data["config"] = {k: v for k, v in data["config"].items() if k != "token_sha256"}
        return data
    if isinstance(value, (BaseImage, Image)):
        return value.to_dict()
    if isinstance(value, Function):
        return value.public_dict()
    if isinstance(value, Secret):
        data = value.public_dict()
        if value.values:
            data["values"] = value.values
        return data
    if isinstance(value, Run):
        return value.to_dict()
    return value


def emit(args: argparse.Namespace, value: Any, table: Callable[[], str]) -> None:
    """Print `value` as the chosen output: a table, JSON or YAML."""
    if args.output == "json":
        print(json.dumps(_data(value), indent=2, default=str))
    elif args.output == "yaml":
        import yaml

        print(yaml.safe_dump(_data(value), sort_keys=False, default_flow_style=False).rstrip())
    else:
        print(table())


def _details(pairs: list[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in pairs)
    lines = []
    for key, value in pairs:
        if not isinstance(value, str):
            value = json.dumps(value, default=str)
        first, *rest = value.splitlines() or [""]
        lines.append(f"{key.ljust(width)}  {first}")
        lines.extend(" " * (width + 2) + line for line in rest)
    return "\n".join(lines)


def _run_details(run: Run) -> str:
    pairs: list[tuple[str, Any]] = [
        ("id", run.id), ("function", run.function), ("status", RunStatus(run.status).value),
        ("input", run.input), ("output", run.output), ("queued", _when(run.queued)),
        ("duration", _duration(run)), ("cold start", "yes" if run.cold_start else "no"),
    ]
    if run.error:
        pairs.append(("error", f"{run.error.type}: {run.error.message}"))
        if run.error.stacktrace:
            pairs.append(("stacktrace", run.error.stacktrace.rstrip()))
    for stream in ("stdout", "stderr"):
        if run.logs.get(stream):
            pairs.append((stream, run.logs[stream].rstrip()))
    return _details(pairs)


# ------------------------------------------------------------------------------ reading files


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None


def _json_arg(text: str, what: str) -> Any:
    """JSON from a file path, or the text itself."""
    source = _read(text) if Path(text).is_file() else text
    try:
        return json.loads(source)
    except ValueError as exc:
        raise CliError(f"{what} is neither a JSON file nor JSON: {exc}") from None


def _function_spec(doc: dict[str, Any], base: Path) -> dict[str, Any]:
    """A YAML Function document as the REST body of a function (file: read, relative to base)."""
    spec = {k: v for k, v in doc.items() if k not in ("kind", "file", "code", "handler")}
    code = doc.get("code")
    filename = "<spec>"
    if doc.get("file") is not None:
        path = base / str(doc["file"])
        code, filename = _read(path), str(path)
    if code is None:
        raise CliError(f"function {doc.get('name', '?')}: give `file:` or `code:`")
    spec["source"] = {"code": code, "filename": filename}
    if doc.get("handler") is not None:
        spec["source"]["handler"] = doc["handler"]
    for key in ("in", "out"):
        value = (spec.get("schema") or {}).get(key)
        if isinstance(value, str):
            spec["schema"][key] = _json_arg(str(base / value) if (base / value).is_file() else value, f"schema.{key}")
    from .server import openapi

    try:
        openapi.validate("FunctionCreate", spec)
    except InvalidRequestError as exc:
        raise CliError(f"function {doc.get('name', '?')}: {exc}") from None
    return spec


def _deploy(client, spec: dict[str, Any]):
    from .packaging.spec import deploy_arguments

    source, name, options = deploy_arguments(spec)
    return client.deploy(source, name, **options)


def _documents(path: str) -> list[dict[str, Any]]:
    import yaml

    try:
        docs = [d for d in yaml.safe_load_all(_read(path)) if d is not None]
    except yaml.YAMLError as exc:
        raise CliError(f"{path} is not valid YAML: {exc}".splitlines()[0]) from None
    for doc in docs:
        if not isinstance(doc, dict) or str(doc.get("kind", "")).lower() not in DOCUMENT_ORDER:
            raise CliError(f"{path}: every document needs `kind: Function`, `Secret`, `BaseImage`, `Image`, "
                           "`Subscription` or `EventSource`")
        if not isinstance(doc.get("name"), str):
            raise CliError(f"{path}: every document needs a `name:`")
    # Secrets first: functions may use them; base images before the images built on them.
    return sorted(docs, key=lambda d: DOCUMENT_ORDER[str(d["kind"]).lower()])


DOCUMENT_ORDER = {"secret": 0, "baseimage": 1, "image": 2, "function": 3, "eventsource": 4, "subscription": 5}


def _events_document(doc: dict[str, Any]) -> dict[str, Any]:
    """A YAML Subscription or EventSource document as the REST body that creates it."""
    kind = str(doc["kind"]).lower()
    spec = {k: v for k, v in doc.items() if k != "kind"}
    from .server import openapi

    try:
        openapi.validate("SubscriptionCreate" if kind == "subscription" else "EventSourceCreate", spec)
    except InvalidRequestError as exc:
        raise CliError(f"{doc['kind']} {doc['name']}: {exc}") from None
    return spec


def _create_subscription(client, spec: dict[str, Any]) -> Subscription:
    options = {k: spec[k] for k in ("filters", "max_attempts", "tags") if spec.get(k) is not None}
    return client.subscribe(spec["function"], event_type=spec["event_type"], name=spec.get("name"), **options)


def _create_event_source(client, spec: dict[str, Any]) -> EventSource:
    return client.create_event_source(spec["name"], type=spec["type"], config=spec.get("config"),
                                      secrets=spec.get("secrets"), tags=spec.get("tags"))


def _event_source_message(source: EventSource) -> str:
    message = f"created event source {source.name} ({source.type})"
    token = source.config.get("token")
    if token:  # shown this once: the server keeps only its hash
        message += f"\nwebhook token (shown once): {token}"
    return message


def _image_document(doc: dict[str, Any]) -> dict[str, Any]:
    """A YAML BaseImage or Image document as the REST body that creates it."""
    kind = str(doc["kind"]).lower()
    spec = {k: v for k, v in doc.items() if k != "kind"}
    if kind == "image" and "base" in spec and "base_image" not in spec:
        spec["base_image"] = spec.pop("base")
    from .server import openapi

    try:
        openapi.validate("BaseImageCreate" if kind == "baseimage" else "ImageCreate", spec)
    except InvalidRequestError as exc:
        raise CliError(f"{doc['kind']} {doc['name']}: {exc}") from None
    return spec


def _build_log(line: str) -> None:
    """A build's log, line by line as it happens, on stderr (stdout keeps -o json clean)."""
    print(line, file=sys.stderr, flush=True)


def _create_base_image(client, spec: dict[str, Any]) -> BaseImage:
    base = client.create_base_image(spec["name"], spec["image_url"], language=spec.get("language", "python3"),
                                    tags=spec.get("tags"))
    if base.status != "READY":
        raise CliError(f"base image {base.name} is in {base.status}: {base.reason} "
                       f"(dispatch delete base-image {base.name}, then create it again)")
    return base


def _create_image(client, spec: dict[str, Any]) -> Image:
    return client.create_image(spec["name"], spec["base_image"], requirements=spec.get("requirements"),
                               system_packages=spec.get("system_packages"), tags=spec.get("tags"),
                               progress=_build_log)


# ------------------------------------------------------------------------------ commands


def cmd_login(args: argparse.Namespace) -> None:
    from .http_client import HttpClient

    with HttpClient(args.server, args.login_token) as client:
        client.list_functions()  # the URL and token work
        url = client.url
    path = save_config({"url": url, "token": args.login_token})
    print(f"logged in to {url} (saved in {path})")


def cmd_logout(args: argparse.Namespace) -> None:
    path = config_path()
    path.unlink(missing_ok=True)
    print("logged out: the embedded default is used")


def cmd_create(args: argparse.Namespace, client) -> None:
    if args.file:
        if args.kind or args.name or args.path:
            raise CliError("create -f takes no other arguments")
        return _apply(args, client, create=True)
    if args.kind == "image" and args.name is not None:
        if args.path is not None:
            raise CliError("usage: dispatch create image NAME --base BASE [--requirements R ...] "
                           "[--system-packages P ...]")
        if not args.base:
            raise CliError("dispatch create image NAME needs --base BASE (a base image: dispatch get base-images)")
        image = _create_image(client, {"name": args.name, "base_image": args.base,
                                       "requirements": args.requirements, "system_packages": args.system_packages})
        emit(args, image, lambda: f"created image {image.name} ({image.status}, {image.image_url})")
        return
    if args.kind == "subscription" and args.name is not None and args.path is None:
        if not args.event_type:
            raise CliError("dispatch create subscription FN needs --event-type T (exact, prefix.* or *)")
        filters = {}
        for pair in args.filter or []:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise CliError(f"expected --filter attribute=value, got {pair!r}")
            filters[key] = value
        sub = _create_subscription(client, {"function": args.name, "event_type": args.event_type,
                                            "name": args.subscription_name, "filters": filters or None,
                                            "max_attempts": args.max_attempts})
        emit(args, sub, lambda: f"created subscription {sub.name} ({sub.event_type} -> {sub.function})")
        return
    if args.kind == "eventsource" and args.name is not None and args.path is None:
        if not args.source_type:
            raise CliError("dispatch create eventsource NAME needs --type schedule|webhook|vcenter")
        config = _json_arg(args.config, "--config") if args.config is not None else None
        if config is not None and not isinstance(config, dict):
            raise CliError("--config must be a JSON object")
        source = _create_event_source(client, {"name": args.name, "type": args.source_type, "config": config,
                                               "secrets": args.secret})
        emit(args, source, lambda: _event_source_message(source))
        return
    if args.kind in ("subscription", "eventsource"):
        raise CliError("usage: dispatch create subscription FN --event-type T | eventsource NAME --type TYPE")
    if args.kind is None or args.name is None or args.path is None:
        raise CliError("usage: dispatch create function NAME FILE.py | secret NAME FILE.json | "
                       "base-image NAME REFERENCE | image NAME --base BASE | subscription FN --event-type T | "
                       "eventsource NAME --type TYPE | -f SPEC.yaml")
    if args.kind == "base-image":
        base = _create_base_image(client, {"name": args.name, "image_url": args.path,
                                           "language": args.language or "python3"})
        emit(args, base, lambda: f"created base image {base.name} ({base.status}, python {base.python or '?'}, "
                                 f"{base.digest})")
        return
    if args.kind == "secret":
        values = _json_arg(args.path, "the secret file")
        secret = client.create_secret(args.name, values)
        emit(args, secret, lambda: f"created secret {secret.name} (keys: {', '.join(secret.keys) or 'none'})")
        return
    try:
        client.get_function(args.name)
    except NotFoundError:
        pass
    else:
        raise CliError(f"function {args.name!r} already exists (dispatch update -f, or delete it first)")
    spec: dict[str, Any] = {
        "name": args.name,
        "source": {"code": _read(args.path), "filename": str(Path(args.path))},
        "requirements": args.requirements or None,
        "secrets": args.secret or None,
        "timeout": args.timeout,
        "memory": args.memory,
        "image": args.image,
        "driver": args.driver,
        "schema": {k: _json_arg(v, f"--schema-{k}") for k, v in (("in", args.schema_in), ("out", args.schema_out)) if v},
        "scaling": {k: v for k, v in (("min_workers", args.min_workers), ("max_workers", args.max_workers)) if v is not None},
    }
    if args.handler:
        spec["source"]["handler"] = args.handler
    handle = _deploy(client, {k: v for k, v in spec.items() if v not in (None, {})})
    function = handle.function
    emit(args, function, lambda: f"created function {function.name} ({function.status}, handler {function.handler})")


def _apply(args: argparse.Namespace, client, create: bool) -> None:
    base = Path(args.file).resolve().parent
    done: list[Any] = []
    messages = []
    for doc in _documents(args.file):
        kind, name = str(doc["kind"]).lower(), doc["name"]
        if kind == "secret":
            if not create:
                raise CliError(f"secret {name}: secrets cannot be updated; delete and create it")
            values = doc.get("values")
            if values is None and doc.get("file") is not None:
                values = _json_arg(str(base / doc["file"]), f"secret {name}")
            secret = client.create_secret(name, values if values is not None else {})
            done.append(secret)
            messages.append(f"created secret {secret.name}")
            continue
        if kind in ("baseimage", "image"):
            if not create:
                raise CliError(f"{doc['kind']} {name}: images cannot be updated; delete and create it")
            spec = _image_document(doc)
            made = _create_base_image(client, spec) if kind == "baseimage" else _create_image(client, spec)
            done.append(made)
            messages.append(f"created {'base image' if kind == 'baseimage' else 'image'} {made.name} ({made.status})")
            continue
        if kind in ("subscription", "eventsource"):
            if not create:
                raise CliError(f"{doc['kind']} {name}: {kind}s cannot be updated; delete and create it")
            spec = _events_document(doc)
            if kind == "subscription":
                sub = _create_subscription(client, spec)
                done.append(sub)
                messages.append(f"created subscription {sub.name} ({sub.event_type} -> {sub.function})")
            else:
                source = _create_event_source(client, spec)
                done.append(source)
                messages.append(_event_source_message(source))
            continue
        spec = _function_spec(doc, base)
        try:
            client.get_function(name)
            exists = True
        except NotFoundError:
            exists = False
        if create and exists:
            raise CliError(f"function {name!r} already exists (dispatch update -f {args.file})")
        if not create and not exists:
            raise CliError(f"no function named {name!r} (dispatch create -f {args.file})")
        function = _deploy(client, spec).function
        done.append(function)
        messages.append(f"{'created' if create else 'updated'} function {function.name} "
                        f"({function.status}, revision {function.revision})")
    emit(args, done, lambda: "\n".join(messages))


def cmd_update(args: argparse.Namespace, client) -> None:
    _apply(args, client, create=False)


def cmd_get(args: argparse.Namespace, client) -> None:
    what = args.what
    if what in ("functions", "function") and (what == "functions" or args.name is None):
        if what == "function" and args.name is None:
            raise CliError("usage: dispatch get function NAME")
        functions = client.list_functions()
        emit(args, functions, lambda: _table(FUNCTION_COLUMNS, [_function_row(f) for f in functions]))
    elif what == "function":
        function = client.get_function(args.name)
        emit(args, function, lambda: _details([
            ("name", function.name), ("status", str(function.status)), ("reason", function.reason or "-"),
            ("handler", function.handler), ("convention", function.convention), ("driver", function.driver),
            ("image", function.image), ("revision", str(function.revision)),
            ("requirements", ", ".join(function.requirements) or "-"),
            ("secrets", ", ".join(function.secrets) or "-"),
            ("timeout", "-" if function.timeout is None else f"{function.timeout:g}s"),
            ("scaling", function.scaling), ("schema", function.schema or "-"), ("modified", _when(function.modified)),
        ]))
    elif what in ("runs", "run"):
        _get_runs(args, client)
    elif what in ("images", "image"):
        if args.name:
            image = client.get_image(args.name)
            emit(args, image, lambda: _details([
                ("name", image.name), ("status", str(image.status)), ("reason", image.reason or "-"),
                ("base image", image.base_image), ("requirements", ", ".join(image.requirements) or "-"),
                ("system packages", ", ".join(image.system_packages) or "-"),
                ("image", image.image_url or "-"), ("modified", _when(image.modified)),
            ]))
            return
        images = client.list_images()
        emit(args, images, lambda: _table(IMAGE_COLUMNS, [_image_row(i) for i in images]))
    elif what in ("base-images", "base-image"):
        if args.name:
            base = client.get_base_image(args.name)
            emit(args, base, lambda: _details([
                ("name", base.name), ("status", str(base.status)), ("reason", base.reason or "-"),
                ("language", base.language), ("python", base.python or "-"), ("image", base.image_url),
                ("digest", base.digest or "-"), ("modified", _when(base.modified)),
            ]))
            return
        bases = client.list_base_images()
        emit(args, bases, lambda: _table(BASE_IMAGE_COLUMNS, [_base_image_row(b) for b in bases]))
    elif what in ("subscriptions", "subscription"):
        if args.name:
            sub = client.get_subscription(args.name)
            emit(args, sub, lambda: _details([
                ("name", sub.name), ("event type", sub.event_type), ("function", sub.function),
                ("filters", sub.filters or "-"), ("max attempts", str(sub.max_attempts)),
                ("modified", _when(sub.modified)),
            ]))
            return
        subs = client.list_subscriptions()
        emit(args, subs, lambda: _table(SUBSCRIPTION_COLUMNS, [_subscription_row(s) for s in subs]))
    elif what in ("eventsources", "eventsource"):
        if args.name:
            source = client.get_event_source(args.name)
            emit(args, source, lambda: _details([
                ("name", source.name), ("type", source.type), ("status", source.status or "-"),
                ("reason", source.reason or "-"), ("config", _data(source)["config"]),
                ("secrets", ", ".join(source.secrets) or "-"), ("modified", _when(source.modified)),
            ]))
            return
        sources = client.list_event_sources()
        emit(args, sources, lambda: _table(EVENT_SOURCE_COLUMNS, [_event_source_row(e) for e in sources]))
    elif what in ("secrets", "secret"):
        if args.name:
            secret = client.get_secret(args.name)
            emit(args, secret, lambda: _details([("name", secret.name), ("keys", ", ".join(secret.keys))]))
            return
        secrets = client.list_secrets()
        emit(args, secrets, lambda: _table(["NAME", "KEYS", "MODIFIED"], [
            [s.name, ", ".join(s.keys), _when(s.modified)] for s in secrets]))


def _get_runs(args: argparse.Namespace, client) -> None:
    function = args.name
    if args.last:
        runs = client.list_runs(function=function, status=args.status, limit=1)
        if not runs:
            raise CliError(f"no runs{f' of {function}' if function else ''} yet")
        emit(args, runs[0], lambda: _run_details(runs[0]))
        return
    runs = client.list_runs(function=function, status=args.status, limit=args.limit)
    if not args.follow:
        emit(args, runs, lambda: _table(RUN_COLUMNS, [_run_row(r) for r in runs]))
        return
    _follow(args, client, function, runs)


def _follow(args: argparse.Namespace, client, function: str | None, runs: list[Run]) -> None:
    """Print the runs so far, then every change as it happens, until interrupted."""
    from .client import LocalClient

    if isinstance(client, LocalClient):
        raise CliError("--follow needs a server: runs of the embedded default live in the process that "
                       "started them (dispatch login URL --token T)")
    import queue

    changes: queue.Queue[Run] = queue.Queue()
    stop = client.watch_runs(lambda run: changes.put(run) if function in (None, run.function) else None)
    try:
        names = [r.function for r in runs] + [function or "FUNCTION"]
        widths = [26, max(len(n) for n in names + ["FUNCTION"]), 9, 9, 19, 0]

        def line(row: list[str]) -> str:
            return "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()

        if args.output == "table":
            print(line(RUN_COLUMNS), flush=True)
            for run in reversed(runs):
                print(line(_run_row(run)), flush=True)
        else:
            for run in reversed(runs):
                print(json.dumps(run.to_dict(), default=str), flush=True)
        while True:
            run = changes.get()
            if args.output == "table":
                print(line(_run_row(run)), flush=True)
            else:
                print(json.dumps(run.to_dict(), default=str), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        stop()


def cmd_exec(args: argparse.Namespace, client) -> None:
    payload = None
    if args.input is not None:
        try:
            payload = json.loads(args.input)
        except ValueError as exc:
            raise CliError(f"--input is not JSON: {exc}") from None
    from .client import LocalClient

    embedded = isinstance(client, LocalClient)
    wait = args.wait or embedded  # an embedded run lives only as long as this command
    run = client.invoke(args.name, payload, wait=wait)
    if args.output != "table":
        emit(args, run, lambda: "")
    elif not wait:
        print(_table(RUN_COLUMNS, [_run_row(run)]))
    elif run.status == RunStatus.SUCCEEDED:
        for stream, target in (("stdout", sys.stderr), ("stderr", sys.stderr)):
            if run.logs.get(stream):
                print(run.logs[stream].rstrip(), file=target)
        print(json.dumps(run.output, default=str))
    if run.status == RunStatus.FAILED:
        raise CliError(f"run {run.id} failed: {run.error.type}: {run.error.message}" if run.error else
                       f"run {run.id} failed")


def cmd_cancel(args: argparse.Namespace, client) -> None:
    run = client.cancel_run(args.run_id)
    emit(args, run, lambda: f"run {run.id} of {run.function} is {run.status}")


def cmd_emit(args: argparse.Namespace, client) -> None:
    data = None
    if args.data is not None:
        try:
            data = json.loads(args.data)
        except ValueError as exc:
            raise CliError(f"--data is not JSON: {exc}") from None
    attributes = {k: v for k, v in (("source", args.source), ("subject", args.subject), ("id", args.id))
                  if v is not None}
    event = client.emit(args.type, data, **attributes)
    emit(args, event, lambda: f"emitted {event['type']} (id {event['id']})")


def cmd_delete(args: argparse.Namespace, client) -> None:
    if args.kind == "subscription":
        client.delete_subscription(args.name)
    elif args.kind == "eventsource":
        client.delete_event_source(args.name)
    elif args.kind == "function":
        client.delete_function(args.name)
    elif args.kind == "image":
        client.delete_image(args.name)
    elif args.kind == "base-image":
        client.delete_base_image(args.name)
    else:
        client.delete_secret(args.name)
    print(f"deleted {args.kind} {args.name}")


# ------------------------------------------------------------------------------ the parser


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="dispatch", description="Serverless functions from Jupyter: "
                                  "deploy, run and inspect them on a Dispatch server or the embedded default.")
    top.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    top.add_argument("--url", help="a Jupyter server with the dispatch extension (default: the login)")
    top.add_argument("--token", help="its token")
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)

    login = commands.add_parser("login", help="remember a server and its token")
    login.add_argument("server", metavar="URL")
    login.add_argument("--token", dest="login_token", required=True)
    commands.add_parser("logout", help="forget the server: use the embedded default")

    create = commands.add_parser("create", help="create a function or secret, or what a YAML file describes")
    create.add_argument("kind", nargs="?", choices=("function", "secret", "base-image", "image", "subscription",
                                                   "eventsource"))
    create.add_argument("name", nargs="?")
    create.add_argument("path", nargs="?", metavar="FILE",
                        help="the function's .py, the secret's .json, or the base image's registry reference")
    create.add_argument("-f", "--file", help="a YAML file of documents with kind: Function | Secret | "
                                             "BaseImage | Image")
    create.add_argument("--handler", help="the function in FILE to run (default: handle, else the only one)")
    create.add_argument("--schema-in", help="JSON Schema of the input (a file or JSON text)")
    create.add_argument("--schema-out", help="JSON Schema of the output (a file or JSON text)")
    create.add_argument("--timeout", help="per run, e.g. 30s")
    create.add_argument("--memory", help="per worker, e.g. 512M")
    create.add_argument("--secret", action="append", help="a secret the function gets (repeatable)")
    create.add_argument("--requirements", nargs="+", action="extend", metavar="REQ",
                        help="distributions to install, e.g. pandas==2.2")
    create.add_argument("--min-workers", type=int)
    create.add_argument("--max-workers", type=int)
    create.add_argument("--image", help="function: the image to build it on (dispatch create image)")
    create.add_argument("--driver", help="function: where it runs, e.g. local or container")
    create.add_argument("--base", help="image: the base image it is built on")
    create.add_argument("--system-packages", nargs="+", action="extend", metavar="PKG",
                        help="image: Debian packages to install, e.g. libgomp1")
    create.add_argument("--language", help="base image: the language of its runtime (python3)")
    create.add_argument("--event-type", help="subscription: the event type, exact, prefix.* or *")
    create.add_argument("--name", dest="subscription_name", help="subscription: its name (default: derived)")
    create.add_argument("--filter", action="append", metavar="ATTRIBUTE=VALUE",
                        help="subscription: also match this CloudEvents attribute (repeatable)")
    create.add_argument("--max-attempts", type=int, help="subscription: deliveries before the dead letters")
    create.add_argument("--type", dest="source_type", help="eventsource: schedule, webhook or vcenter")
    create.add_argument("--config", help="eventsource: its configuration (a JSON file or JSON text)")

    update = commands.add_parser("update", help="update the functions a YAML file describes")
    update.add_argument("-f", "--file", required=True)

    get = commands.add_parser("get", help="list or show functions, runs and secrets")
    get.add_argument("what", choices=("functions", "function", "runs", "run", "secrets", "secret",
                                      "images", "image", "base-images", "base-image",
                                      "subscriptions", "subscription", "eventsources", "eventsource"))
    get.add_argument("name", nargs="?", help="a function (for runs: only its runs) or secret")
    get.add_argument("--last", action="store_true", help="runs: only the latest, in full")
    get.add_argument("--follow", action="store_true", help="runs: keep printing changes as they happen")
    get.add_argument("--status", help="runs: only this status")
    get.add_argument("--limit", type=int, default=20, help="runs: how many (default 20)")

    exe = commands.add_parser("exec", help="run a function")
    exe.add_argument("name")
    exe.add_argument("--input", help="the input as JSON")
    exe.add_argument("--wait", action="store_true", help="wait for the run and print its output")

    cancel = commands.add_parser("cancel", help="stop a queued or running run")
    cancel.add_argument("run_id", metavar="RUN_ID")

    emitter = commands.add_parser("emit", help="publish a CloudEvent")
    emitter.add_argument("type", help="the event type, e.g. order.created")
    emitter.add_argument("--data", help="the event's data as JSON")
    emitter.add_argument("--source", help="the event's source (default: dispatch)")
    emitter.add_argument("--subject", help="the event's subject")
    emitter.add_argument("--id", help="the event's id (default: a fresh one)")

    delete = commands.add_parser("delete", help="delete a function or secret")
    delete.add_argument("kind", choices=("function", "secret", "image", "base-image", "subscription", "eventsource"))
    delete.add_argument("name")
    for sub in commands.choices.values():  # `-o json` reads naturally after the command too
        sub.add_argument("-o", "--output", choices=("table", "json", "yaml"), default=argparse.SUPPRESS)
    return top


COMMANDS = {"create": cmd_create, "update": cmd_update, "get": cmd_get, "exec": cmd_exec, "delete": cmd_delete,
            "emit": cmd_emit, "cancel": cmd_cancel}


def main(argv: list[str] | None = None) -> int:
    """Run one command; 0 on success, 1 with one line on stderr on failure."""
    args = parser().parse_args(argv)
    try:
        if args.command == "login":
            cmd_login(args)
        elif args.command == "logout":
            cmd_logout(args)
        else:
            client = open_client(args)
            try:
                COMMANDS[args.command](args, client)
            finally:
                client.close()
    except (CliError, DispatchError, OSError) as exc:
        message = " ".join(str(exc).split()) if not isinstance(exc, CliError) else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
