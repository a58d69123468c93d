"""The commands of `dispatch`: each parses its arguments, calls the client and prints."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .._http import HttpClient
from .._local import LocalClient
from ..drivers.choice import driver_option
from ..inputs import json_or_file, key_values
from ..model import NotFoundError, Run, RunStatus
from .documents import (
    api_message,
    apply,
    create_api,
    create_base_image,
    create_event_source,
    create_image,
    create_subscription,
    deploy_spec,
    event_source_message,
    read_file,
)
from .errors import CliError
from .output import (DEAD_LETTER_COLUMNS, KINDS, PLURALS, RUN_COLUMNS, dead_letter_row, emit, run_details,
                     run_row, show, table)
from .session import config_path, save_config


def cmd_login(args: argparse.Namespace) -> None:
    """`dispatch login URL --token T`: check the server answers, then remember it."""
    with HttpClient(args.server, args.login_token) as client:
        client.list_functions()  # the URL and token work
        url = client.url
    path = save_config({"url": url, "token": args.login_token})
    print(f"logged in to {url} (saved in {path})")


def cmd_logout(args: argparse.Namespace) -> None:
    """`dispatch logout`: forget the server."""
    path = config_path()
    path.unlink(missing_ok=True)
    print("logged out: the embedded default is used")


def cmd_create(args: argparse.Namespace, client: Any) -> None:
    """`dispatch create KIND NAME ...`, or `-f FILE`."""
    if args.file:
        if args.kind or args.name or args.path:
            raise CliError("create -f takes no other arguments")
        return apply(args, client, create=True)
    if args.kind == "image" and args.name is not None:
        if args.path is not None:
            raise CliError("usage: dispatch create image NAME --base BASE [--requirements R ...] "
                           "[--system-packages P ...]")
        if not args.base:
            raise CliError("dispatch create image NAME needs --base BASE (a base image: dispatch get base-images)")
        image = create_image(client, {"name": args.name, "base_image": args.base,
                                       "requirements": args.requirements, "system_packages": args.system_packages})
        emit(args, image, lambda: f"created image {image.name} ({image.status}, {image.image_url})")
        return
    if args.kind == "subscription" and args.name is not None and args.path is None:
        if not args.event_type:
            raise CliError("dispatch create subscription FN needs --event-type T (exact, prefix.* or *)")
        filters = key_values(args.filter or [], "--filter attribute=value")
        sub = create_subscription(client, {"function": args.name, "event_type": args.event_type,
                                            "name": args.subscription_name, "filters": filters or None,
                                            "max_attempts": args.max_attempts})
        emit(args, sub, lambda: f"created subscription {sub.name} ({sub.event_type} -> {sub.function})")
        return
    if args.kind == "eventsource" and args.name is not None and args.path is None:
        if not args.source_type:
            raise CliError("dispatch create eventsource NAME needs --type schedule|webhook|vcenter")
        config = json_or_file(args.config, "--config") if args.config is not None else None
        if config is not None and not isinstance(config, dict):
            raise CliError("--config must be a JSON object")
        source = create_event_source(client, {"name": args.name, "type": args.source_type, "config": config,
                                               "secrets": args.secret})
        emit(args, source, lambda: event_source_message(source))
        return
    if args.kind == "api" and args.name is not None:
        if args.path is None or not args.api_paths:
            raise CliError("usage: dispatch create api NAME FUNCTION --path /hello/{name} [--method GET ...] "
                           "[--host H] [--cors] [--auth public|token] [--disable]")
        api = create_api(client, {"name": args.name, "function": args.path, "methods": args.method,
                                  "paths": args.api_paths, "hosts": args.host, "cors": bool(args.cors),
                                  "auth": args.auth or "public", "enabled": not args.disable})
        emit(args, api, lambda: api_message(client, api))
        return
    if args.kind in ("subscription", "eventsource"):
        raise CliError("usage: dispatch create subscription FN --event-type T | eventsource NAME --type TYPE")
    if args.kind is None or args.name is None or args.path is None:
        raise CliError("usage: dispatch create function NAME FILE.py | secret NAME FILE.json | "
                       "base-image NAME REFERENCE | image NAME --base BASE | subscription FN --event-type T | "
                       "eventsource NAME --type TYPE | api NAME FUNCTION --path P | -f SPEC.yaml")
    if args.kind == "base-image":
        base = create_base_image(client, {"name": args.name, "image_url": args.path,
                                           "language": args.language or "python3"})
        emit(args, base, lambda: f"created base image {base.name} ({base.status}, python {base.python or '?'}, "
                                 f"{base.digest})")
        return
    if args.kind == "secret":
        values = json_or_file(args.path, "the secret file")
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
        "source": {"code": read_file(args.path), "filename": str(Path(args.path))},
        "requirements": args.requirements or None,
        "secrets": args.secret or None,
        "timeout": args.timeout,
        "memory": args.memory,
        "image": args.image,
        **driver_option(args.driver),
        "schema": {k: json_or_file(v, f"--schema-{k}") for k, v in (("in", args.schema_in), ("out", args.schema_out)) if v},
        "scaling": {k: v for k, v in (("min_workers", args.min_workers), ("max_workers", args.max_workers)) if v is not None},
    }
    if args.handler:
        spec["source"]["handler"] = args.handler
    handle = deploy_spec(client, {k: v for k, v in spec.items() if v not in (None, {})})
    function = handle.function
    emit(args, function, lambda: f"created function {function.name} ({function.status}, handler {function.handler})")


def cmd_update(args: argparse.Namespace, client: Any) -> None:
    """`dispatch update -f FILE`: new revisions of the functions and APIs it describes."""
    apply(args, client, create=False)


def cmd_get(args: argparse.Namespace, client: Any) -> None:
    """`dispatch get KIND [NAME]`: a table of every entity of the kind, or one entity in full."""
    if args.what in ("runs", "run"):
        _get_runs(args, client)
        return
    if args.what == "deadletters":
        letters = client.dead_letters(args.name)
        emit(args, letters, lambda: table(DEAD_LETTER_COLUMNS, [dead_letter_row(d) for d in letters])
             if letters else "no dead letters")
        return
    kind = KINDS[PLURALS.get(args.what, args.what)]
    if args.name is None and args.what == "function":
        raise CliError("usage: dispatch get function NAME")
    show(args, kind, client)


def _get_runs(args: argparse.Namespace, client: Any) -> None:
    function = args.name
    if args.last:
        runs = client.list_runs(function=function, status=args.status, limit=1)
        if not runs:
            raise CliError(f"no runs{f' of {function}' if function else ''} yet")
        emit(args, runs[0], lambda: run_details(runs[0]))
        return
    runs = client.list_runs(function=function, status=args.status, limit=args.limit)
    if not args.follow:
        emit(args, runs, lambda: table(RUN_COLUMNS, [run_row(r) for r in runs]))
        return
    _follow(args, client, function, runs)


def _follow(args: argparse.Namespace, client: Any, function: str | None, runs: list[Run]) -> None:
    """Print the runs so far, then every change as it happens, until interrupted."""
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
                print(line(run_row(run)), flush=True)
        else:
            for run in reversed(runs):
                print(json.dumps(run.to_dict(), default=str), flush=True)
        while True:
            run = changes.get()
            if args.output == "table":
                print(line(run_row(run)), flush=True)
            else:
                print(json.dumps(run.to_dict(), default=str), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        stop()


def _inline_json(text: str | None, option: str) -> Any:
    """The JSON value of an option given inline (None when it is not given)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"{option} is not JSON: {exc}") from None


def cmd_exec(args: argparse.Namespace, client: Any) -> None:
    """`dispatch exec NAME [--input JSON] [--wait] [--driver D]`."""
    payload = _inline_json(args.input, "--input")
    embedded = isinstance(client, LocalClient)
    wait = args.wait or embedded  # an embedded run lives only as long as this command
    run = client.invoke(args.name, payload, wait=wait, **({"driver": args.driver} if args.driver else {}))
    if args.output != "table":
        emit(args, run, lambda: "")
    elif not wait:
        print(table(RUN_COLUMNS, [run_row(run)]))
    elif run.status == RunStatus.SUCCEEDED:
        for stream, target in (("stdout", sys.stderr), ("stderr", sys.stderr)):
            if run.logs.get(stream):
                print(run.logs[stream].rstrip(), file=target)
        print(json.dumps(run.output, default=str))
    if run.status == RunStatus.FAILED:
        raise CliError(f"run {run.id} failed: {run.error.type}: {run.error.message}" if run.error else
                       f"run {run.id} failed")


def cmd_cancel(args: argparse.Namespace, client: Any) -> None:
    """`dispatch cancel RUN_ID`."""
    run = client.cancel_run(args.run_id)
    emit(args, run, lambda: f"run {run.id} of {run.function} is {run.status}")


def cmd_replay(args: argparse.Namespace, client: Any) -> None:
    """`dispatch replay LETTER_ID [--wait]`: the new run (waited for on the embedded default,
    whose runs live only as long as this command)."""
    run = client.replay_dead_letter(args.letter_id)
    if args.wait or isinstance(client, LocalClient):
        run = client.wait_run(run.id)
    emit(args, run, lambda: f"dead letter {args.letter_id} replayed as run {run.id} ({run.status})")


def cmd_emit(args: argparse.Namespace, client: Any) -> None:
    """`dispatch emit TYPE [--data JSON]`."""
    data = _inline_json(args.data, "--data")
    attributes = {k: v for k, v in (("source", args.source), ("subject", args.subject), ("id", args.id))
                  if v is not None}
    event = client.emit(args.type, data, **attributes)
    emit(args, event, lambda: f"emitted {event['type']} (id {event['id']})")


def cmd_delete(args: argparse.Namespace, client: Any) -> None:
    """`dispatch delete KIND NAME`."""
    KINDS[args.kind].delete(client, args.name)
    print(f"deleted {args.kind} {args.name}")
