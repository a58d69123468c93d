"""The IPython extension: `%%dispatch` deploys a cell's function, `%dispatch …` manages them.

    %load_ext dispatch_kernel

    %%dispatch hello --timeout 10s --secret greeting
    def handle(ctx, payload):
        return {"greeting": "hello " + payload["name"]}

The magic is a thin face: it parses options, runs the cell, and calls the Client. Everything a
REST handler or the CLI would need too lives in the core.
"""

from __future__ import annotations

import argparse
import ast
import re
import shlex
import time
from typing import Any, Callable

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.display import display

from ._client import Client
from . import _connect
from ._handles import FunctionHandle
from .inputs import json_or_file, key_values, typed_json
from .drivers.choice import driver_option
from .entities import Api
from .model import ConflictError, DispatchError, Function, InvalidRequestError


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are UsageErrors that end with the usage line."""

    def error(self, message: str):
        raise UsageError(f"{message}\n{self.format_usage().strip()}")


def _deploy_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="%%dispatch",
        description="Run the cell, then deploy its function: `handle` if the cell defines it, "
        "else the cell's last top-level function (or --handler NAME).",
        add_help=False,
    )
    parser.add_argument("name", nargs="?", help="the function's name (default: the handler's name)")
    parser.add_argument("--handler", help="the function in the cell to deploy")
    parser.add_argument("--schema-in", help="input JSON Schema: inline JSON or a file path")
    parser.add_argument("--schema-out", help="output JSON Schema: inline JSON or a file path")
    parser.add_argument("--timeout", help="per run, e.g. 500ms, 30s, 5m")
    parser.add_argument("--memory", help="per worker, e.g. 512M, 2G")
    parser.add_argument("--requirements", help='extra requirements, e.g. "pandas==2.2 requests"')
    parser.add_argument("--secret", action="append", default=[], help="a secret to give it (repeatable)")
    parser.add_argument("--min-workers", type=int, help="warm workers kept ready")
    parser.add_argument("--max-workers", type=int, help="workers at most")
    parser.add_argument("--idle-timeout", help="how long an idle worker lives, e.g. 5m")
    parser.add_argument("--driver", help="where it runs (default: local); several: a,b (failover, in order) "
                                         "or a=0.9,b=0.1 (a split by weight)")
    parser.add_argument("--image", help="an image made with create_image to build the function on")
    parser.add_argument("--route", action="append", default=[], metavar='"GET,POST /path/{param}"',
                        help="an HTTP route to it, served under dispatch/http/{org}/ (repeatable)")
    return parser


DEPLOY = _deploy_parser()

LINE_USAGE = """\
%dispatch functions                              list deployed functions
%dispatch runs [NAME] [--status S] [--limit N]   the runs table (live)
%dispatch invoke NAME [JSON]                     run with a JSON input (bare, quoted or a file), show the run
%dispatch logs RUN_ID                            a run's stdout and stderr
%dispatch cancel RUN_ID                          stop a queued or running run
%dispatch delete NAME                            delete a function
%dispatch secret NAME key=value ...              create (or replace) a secret
%dispatch status                                 where functions run, and what is running
%dispatch connect [URL] [--token T]              use a Dispatch server (no URL: the embedded default)
%dispatch emit TYPE [JSON] [--source S]          publish a CloudEvent; subscribed functions run
%dispatch subscribe FN --event-type T            run FN for each event of type T (exact or prefix.*)
%dispatch sources                                event sources and subscriptions, with their status
%dispatch deadletters [SUBSCRIPTION]             events given up after their subscription's max_attempts
%dispatch replay LETTER_ID                       deliver a dead letter's event again (a new run)
%dispatch apis [NAME]                            the APIs (HTTP routes to functions) and their URLs
%dispatch help                                   this text"""


# `--source S` of `%dispatch emit`: last on the line (as the usage line has it) or right after
# TYPE, never inside the JSON; S may be shell-quoted.
_SOURCE = r"""--source(?:\s+|=)(?P<source>'[^']*'|"[^"]*"|[^\s'"]+)"""
_SOURCE_LAST = re.compile(rf"\s{_SOURCE}\s*$")
_SOURCE_AFTER_TYPE = re.compile(rf"^(?P<type>\S+)\s+{_SOURCE}(?=\s|$)")

ROUTE_TAG = "dispatch/route-of"  # on the APIs a %%dispatch cell's --route options made: its function


def _route(text: str) -> tuple[list[str], str]:
    """A --route option as (methods, path); a UsageError saying what is wrong."""
    from .gateway.routes import parse_route

    try:
        return parse_route(text)
    except DispatchError as exc:  # a bad method (InvalidRequestError) or template (a conflict)
        raise UsageError(f"--route {text!r}: {exc}") from None


def _subparser(prog: str) -> argparse.ArgumentParser:
    return _Parser(prog=f"%dispatch {prog}", add_help=False)


def _load_schema(value: str | None, option: str) -> Any:
    """Inline JSON, or the path of a JSON file (None when the option is not given)."""
    return None if value is None else json_or_file(value, option)


def cell_functions(code: str) -> list[str]:
    """Names of the functions a cell defines at top level, in order."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


class NotebookFunction(FunctionHandle):
    """The handle a `%%dispatch` cell binds in the notebook: call it to run remotely,
    `.local()` to call the cell's original function in the kernel."""


def _functions_bundle(functions: list[Function]) -> dict[str, str]:
    """A text and HTML table of functions (static: it is a listing, not a live view)."""
    from html import escape

    rows = [(f.name, str(f.status), f.driver, f.image or "-", str(f.revision),
             time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(f.modified))) for f in functions]
    head = ("name", "status", "driver", "environment", "revision", "modified")
    if not rows:
        return {"text/plain": "no functions deployed", "text/html": "<p>no functions deployed</p>"}
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    text = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [head, *rows])
    cells = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return {"text/plain": text, "text/html": f"<table><tr>{cells}</tr>{body}</table>"}


def _apis_bundle(apis: list[tuple[Api, list[str]]]) -> dict[str, str]:
    """A text and HTML table of APIs with the URLs of their routes."""
    from html import escape

    if not apis:
        return {"text/plain": "no APIs", "text/html": "<p>no APIs</p>"}
    head = ("name", "function", "methods", "urls", "auth", "cors", "enabled")
    rows = [(api.name, api.function, ",".join(api.methods), " ".join(urls), api.auth,
             "yes" if api.cors else "no", "yes" if api.enabled else "no") for api, urls in apis]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    text = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [head, *rows])
    cells = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return {"text/plain": text, "text/html": f"<table><tr>{cells}</tr>{body}</table>"}


@magics_class
class DispatchMagics(Magics):
    """`%%dispatch` and `%dispatch`, over one Client per kernel."""

    def __init__(self, shell, connect: Callable[..., Client] | None = None) -> None:
        super().__init__(shell)
        self._connect = connect or _connect.connect
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        """The client, connected on first use (a server if one is found, else embedded)."""
        if self._client is None:
            self._client = self._connect()
        return self._client

    def close(self) -> None:
        """Release the client (and the embedded core's workers)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    @no_var_expand  # JSON inputs and schemas use braces; IPython would try to expand them
    @line_cell_magic
    def dispatch(self, line: str, cell: str | None = None) -> Any:
        """Deploy a cell's function as a serverless function, or manage deployed ones.

        Cell magic: %%dispatch [NAME] [--handler H] [--schema-in JSON|FILE] [--schema-out JSON|FILE]
                                [--timeout 30s] [--memory 512M] [--requirements "pkg==1 other"]
                                [--secret S ...] [--min-workers N] [--max-workers N]
                                [--idle-timeout 5m] [--driver D] [--image I]
                                [--route "GET,POST /hello/{name}" ...]

        The cell runs in the kernel as usual, then its handler is deployed: --handler, else
        `handle` if the cell defines it, else the cell's last top-level function. Afterwards
        NAME (default: the handler's name) is the deployed function: call it to run it,
        `.local()` to call the original here, `.spawn()`, `.map()`, `.runs()`, `.delete()`.
        Running an unchanged cell again deploys nothing new. Each --route is an API that
        routes HTTP to it (named NAME, NAME-2, ...); the card shows their URLs.

        Line magic:
        %dispatch functions                              list deployed functions
        %dispatch runs [NAME] [--status S] [--limit N]   the runs table (live)
        %dispatch invoke NAME [JSON]                     run with a JSON input and show the run
        %dispatch logs RUN_ID                            a run's stdout and stderr
        %dispatch cancel RUN_ID                          stop a queued or running run
        %dispatch delete NAME                            delete a function
        %dispatch secret NAME key=value ...              create (or replace) a secret
        %dispatch status                                 where functions run, what is running
        %dispatch connect [URL] [--token T]              use a Dispatch server
        %dispatch apis [NAME]                            APIs (HTTP routes) and their URLs
        %dispatch deadletters [SUBSCRIPTION]             events given up after max_attempts
        %dispatch replay LETTER_ID                       deliver a dead letter's event again
        %dispatch help                                   this text
        """
        try:
            if cell is None:
                return self._line(line)
            return self._deploy(line, cell)
        except DispatchError as exc:
            raise UsageError(str(exc)) from None

    # ------------------------------------------------------------------ %%dispatch

    def _deploy(self, line: str, cell: str) -> None:
        try:
            words = shlex.split(line)  # shell quoting, so inline JSON survives intact
        except ValueError as exc:
            raise UsageError(f"{exc} in: %%dispatch {line}") from None
        args = DEPLOY.parse_args(words)
        options: dict[str, Any] = {
            "schema_in": _load_schema(args.schema_in, "--schema-in"),
            "schema_out": _load_schema(args.schema_out, "--schema-out"),
            "timeout": args.timeout,
            "memory": args.memory,
            "requirements": shlex.split(args.requirements) if args.requirements else None,
            "secrets": args.secret or None,
            "min_workers": args.min_workers,
            "max_workers": args.max_workers,
            "idle_timeout": args.idle_timeout,
            "image": args.image,
            **driver_option(args.driver),
        }
        source = self.shell.transform_cell(cell)
        # Compiled under a cached cell name, so tracebacks and the packaged function can quote
        # the cell; an error in the cell propagates and nothing is deployed.
        filename = self.shell.compile.cache(source, self.shell.execution_count, raw_code=cell)
        exec(compile(source, filename, "exec"), self.shell.user_global_ns, self.shell.user_ns)
        defined = cell_functions(source)
        handler = args.handler or ("handle" if "handle" in defined else (defined[-1] if defined else None))
        if handler is None:
            raise UsageError("the cell defines no function to deploy (or name one with --handler)")
        original = self.shell.user_ns.get(handler)
        if isinstance(original, FunctionHandle):  # the cell did not redefine it: deploy the original
            original = original._original
        if not callable(original):
            raise UsageError(f"the cell defines no function named {handler!r}")
        name = args.name or handler
        from .widgets import FunctionCard

        options = {k: v for k, v in options.items() if v is not None}
        routes = [_route(text) for text in args.route]  # a bad route is refused before the deploy
        card = FunctionCard(name)
        # A display id lets the final card replace the "deploying" one in the saved output
        # too, so a notebook run headlessly (or read on GitHub) shows the result.
        shown = display(card, display_id=True)
        started = time.perf_counter()
        try:
            deployed = self.client.deploy(original, name, progress=card.progress, **options)
        except DispatchError as exc:
            failed = getattr(exc, "function", None)
            if failed is not None:  # the card shows ERROR and the reason, not "deploying"
                card.update(failed)
            if shown is not None:
                shown.update(card)
            raise
        added = set(options.get("requirements") or [])
        self.shell.user_ns[name] = NotebookFunction(self.client, deployed.function, original)
        urls: list[str] = []
        try:  # a route another API claims is refused (409) after the deploy: the card says so
            urls = [url for api in self._sync_routes(name, routes) for url in self.client.api_urls(api)]
        finally:
            card.update(deployed.function, detected_requirements=[r for r in deployed.function.requirements
                                                                  if r not in added],
                        deploy_seconds=time.perf_counter() - started, urls=urls)
            if shown is not None:
                shown.update(card)

    def _sync_routes(self, name: str, routes: list[tuple[list[str], str]]) -> list[Api]:
        """Make the APIs of the cell's --route options (NAME, NAME-2, ...: tagged as the cell's)
        what the cell says, removing those it no longer has; the function's APIs after that."""
        client = self.client
        apis = client.list_apis(function=name)
        owned = {api.name: api for api in client.list_apis() if api.tags.get(ROUTE_TAG) == name}
        wanted = {name if i == 0 else f"{name}-{i + 1}": route for i, route in enumerate(routes)}
        changed = False
        for api_name, (methods, path) in wanted.items():
            api = owned.get(api_name)
            if api is None:
                client.create_api(api_name, name, methods=methods, paths=[path], tags={ROUTE_TAG: name})
                changed = True
            elif (api.function, api.methods, api.paths, api.enabled) != (name, methods, [path], True):
                client.update_api(api_name, function=name, methods=methods, paths=[path], enabled=True)
                changed = True
        for api_name in set(owned) - set(wanted):
            client.delete_api(api_name)
            changed = True
        return client.list_apis(function=name) if changed else apis

    # ------------------------------------------------------------------ %dispatch

    def _line(self, line: str) -> Any:
        if line.split(None, 1)[:1] == ["invoke"]:
            return self._invoke(line.split(None, 2)[1:])  # the JSON: bare or shell-quoted
        if line.split(None, 1)[:1] == ["emit"]:
            return self._emit(line.split(None, 1)[1:])  # the JSON: bare or shell-quoted
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"{exc} in: %dispatch {line}") from None
        if not words or words[0] in ("help", "-h", "--help"):
            print(LINE_USAGE)
            return None
        command, rest = words[0], words[1:]
        handler = getattr(self, f"_cmd_{command}", None)
        if handler is None:
            raise UsageError(f"unknown command {command!r}; try one of:\n{LINE_USAGE}")
        return handler(rest)

    def _cmd_functions(self, rest: list[str]) -> None:
        _subparser("functions").parse_args(rest)
        display(_functions_bundle(self.client.list_functions()), raw=True)

    def _cmd_runs(self, rest: list[str]) -> None:
        parser = _subparser("runs")
        parser.add_argument("name", nargs="?")
        parser.add_argument("--status")
        parser.add_argument("--limit", type=int, default=50)
        args = parser.parse_args(rest)
        if args.name is not None:
            self.client.get_function(args.name)  # an unknown name is one clear sentence
        from .widgets import RunsTable

        display(RunsTable(self.client, function=args.name, status=args.status, limit=args.limit))

    def _invoke(self, words: list[str]) -> None:
        if not words:
            raise UsageError("usage: %dispatch invoke NAME [JSON]")
        payload = typed_json(words[1], "the input") if len(words) > 1 else None
        from .widgets import RunInspector

        display(RunInspector(self.client.invoke(words[0], payload, wait=True)))

    def _cmd_logs(self, rest: list[str]) -> None:
        parser = _subparser("logs")
        parser.add_argument("run_id")
        run = self.client.get_run(parser.parse_args(rest).run_id)
        for stream in ("stdout", "stderr"):
            text = run.logs.get(stream, "")
            if text:
                print(f"--- {stream} ---\n{text}", end="" if text.endswith("\n") else "\n")
        if not any(run.logs.values()):
            print(f"run {run.id} ({run.status}) wrote nothing")

    def _cmd_cancel(self, rest: list[str]) -> None:
        parser = _subparser("cancel")
        parser.add_argument("run_id")
        run = self.client.cancel_run(parser.parse_args(rest).run_id)
        print(f"run {run.id} of {run.function} is {run.status}")

    def _cmd_delete(self, rest: list[str]) -> None:
        parser = _subparser("delete")
        parser.add_argument("name")
        name = parser.parse_args(rest).name
        self.client.delete_function(name)
        bound = self.shell.user_ns.get(name)
        if isinstance(bound, NotebookFunction):
            self.shell.user_ns[name] = bound._original  # the cell's function, local again
        print(f"deleted function {name}")

    def _cmd_secret(self, rest: list[str]) -> None:
        parser = _subparser("secret")
        parser.add_argument("name")
        parser.add_argument("pairs", nargs="+", metavar="key=value")
        args = parser.parse_args(rest)
        values = key_values(args.pairs, "key=value")
        try:
            secret = self.client.create_secret(args.name, values)
        except ConflictError:  # the magic's promise is "create or replace"
            self.client.delete_secret(args.name)
            secret = self.client.create_secret(args.name, values)
        print(f"secret {secret.name} stored with keys: {', '.join(secret.keys)}")

    def _cmd_status(self, rest: list[str]) -> None:
        _subparser("status").parse_args(rest)
        client = self.client
        functions = client.list_functions()
        recent = client.list_runs(limit=1000)
        counts: dict[str, int] = {}
        for run in recent:
            counts[str(run.status)] = counts.get(str(run.status), 0) + 1
        print(f"connected to: {client.describe()}")
        print(f"functions: {len(functions)} ({', '.join(f.name for f in functions) or 'none'})")
        print("recent runs: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"))

    def _cmd_connect(self, rest: list[str]) -> None:
        parser = _subparser("connect")
        parser.add_argument("url", nargs="?")
        parser.add_argument("--token")
        args = parser.parse_args(rest)
        client = _connect.connect(args.url, token=args.token) if args.url else _connect.connect()
        self.close()
        self._client = client
        print(f"connected to {client.describe()}")

    # ------------------------------------------------------------------ events

    def _emit(self, words: list[str]) -> None:
        text = words[0].strip() if words else ""
        source = "notebook"
        last = _SOURCE_LAST.search(text)
        after_type = None if last else _SOURCE_AFTER_TYPE.match(text)
        if last is not None:
            source, text = shlex.split(last.group("source"))[0], text[:last.start()].strip()
        elif after_type is not None:
            source = shlex.split(after_type.group("source"))[0]
            text = f"{after_type.group('type')} {text[after_type.end():].strip()}".strip()
        event_type, _, data_text = text.partition(" ")
        if not event_type or event_type.startswith("-"):
            raise UsageError("usage: %dispatch emit TYPE [JSON] [--source S]")
        data = typed_json(data_text, "the data") if data_text.strip() else None
        event = self.client.emit(event_type, data, source=source)
        print(f"emitted {event['type']} (id {event['id']})")

    def _cmd_subscribe(self, rest: list[str]) -> None:
        parser = _subparser("subscribe")
        parser.add_argument("function")
        parser.add_argument("--event-type", required=True)
        parser.add_argument("--name")
        parser.add_argument("--filter", action="append", default=[], metavar="ATTRIBUTE=VALUE")
        args = parser.parse_args(rest)
        filters = key_values(args.filter, "--filter attribute=value")
        sub = self.client.subscribe(args.function, event_type=args.event_type, name=args.name,
                                              filters=filters)
        print(f"subscription {sub.name}: {sub.event_type} -> {sub.function}")

    def _cmd_deadletters(self, rest: list[str]) -> None:
        parser = _subparser("deadletters")
        parser.add_argument("subscription", nargs="?")
        letters = self.client.dead_letters(parser.parse_args(rest).subscription)
        if not letters:
            print("no dead letters")
        for letter in letters:
            event = letter.get("event") or {}
            print(f"{letter['id']}  {letter['subscription']}  {event.get('type')} (id {event.get('id')})  "
                  f"{letter['attempts']} attempts: {letter.get('error') or '-'}")

    def _cmd_replay(self, rest: list[str]) -> None:
        parser = _subparser("replay")
        parser.add_argument("letter_id")
        letter_id = parser.parse_args(rest).letter_id
        run = self.client.replay_dead_letter(letter_id)
        print(f"dead letter {letter_id} replayed as run {run.id} of {run.function} ({run.status})")

    def _cmd_apis(self, rest: list[str]) -> None:
        parser = _subparser("apis")
        parser.add_argument("function", nargs="?", help="only the APIs of this function")
        args = parser.parse_args(rest)
        client = self.client
        display(_apis_bundle([(api, client.api_urls(api)) for api in client.list_apis(function=args.function)]),
                raw=True)

    def _cmd_sources(self, rest: list[str]) -> None:
        _subparser("sources").parse_args(rest)
        client = self.client
        sources = client.list_event_sources()
        print("event sources:" + ("" if sources else " none"))
        for source in sources:
            reason = f" ({source.reason})" if source.reason else ""
            print(f"  {source.name}  {source.type}  {source.status}{reason}")
        subscriptions = client.list_subscriptions()
        print("subscriptions:" + ("" if subscriptions else " none"))
        for sub in subscriptions:
            print(f"  {sub.name}  {sub.event_type} -> {sub.function}")


def load(ip) -> DispatchMagics:
    """Register the magics with the shell `ip` (called by %load_ext dispatch_kernel)."""
    magics = DispatchMagics(ip)
    ip.register_magics(magics)
    return magics
