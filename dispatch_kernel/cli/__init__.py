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
    dispatch get deadletters [SUBSCRIPTION]       events given up after max_attempts
    dispatch replay LETTER_ID [--wait]            deliver a dead letter's event again (a new run)
    dispatch delete subscription|eventsource NAME
    dispatch create api NAME FUNCTION --method GET --path /hello/{name} [--host H] [--cors]
                                      [--auth public|token] [--disable]
    dispatch get apis | api NAME
    dispatch delete api NAME
    dispatch gateway --port P                     serve the routes of APIs (a standalone gateway)
    dispatch store copy --from sqlite:PATH --to postgresql://...   move a home's store to a team's
    dispatch secrets rotate-key                   re-seal secrets with DISPATCH_SECRET_KEY's first key
    dispatch iam create organization|policy|serviceaccount NAME ...   (see cli/iam.py)
    dispatch iam get|delete ... ; dispatch iam explain SUBJECT ACTION RESOURCE
    dispatch whoami                               subject, groups, organizations, what you may do
    dispatch --org ORG ...                        work in organization ORG (X-Dispatch-Org)

Without a login (or --url, or DISPATCH_URL) it works on the embedded default: a core in this
process on DISPATCH_HOME. Output is a table, or `-o json` / `-o yaml`. An error is one line on
stderr and a non-zero exit status. The parts: session.py (where the command works), output.py
(what it prints), documents.py (the files it reads), commands.py (the commands).
"""

from __future__ import annotations

import argparse
import sys

from ..model import DispatchError
from .commands import (
    cmd_cancel,
    cmd_create,
    cmd_delete,
    cmd_emit,
    cmd_exec,
    cmd_get,
    cmd_login,
    cmd_logout,
    cmd_replay,
    cmd_update,
)
from .errors import CliError
from .iam import add_parsers as add_iam_parsers
from .iam import cmd_iam, cmd_whoami
from .session import open_client
from .stores import cmd_secrets_rotate_key, cmd_store_copy


def parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    top = argparse.ArgumentParser(prog="dispatch", description="Serverless functions from Jupyter: "
                                  "deploy, run and inspect them on a Dispatch server or the embedded default.")
    top.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    top.add_argument("--url", help="a Jupyter server with the dispatch extension (default: the login)")
    top.add_argument("--token", help="its token, or a service account's JWT")
    top.add_argument("--org", help="the organization to work in (default: the server's)")
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)

    login = commands.add_parser("login", help="remember a server and its token")
    login.add_argument("server", metavar="URL")
    login.add_argument("--token", dest="login_token", required=True)
    commands.add_parser("logout", help="forget the server: use the embedded default")

    create = commands.add_parser("create", help="create a function or secret, or what a YAML file describes")
    create.add_argument("kind", nargs="?", choices=("function", "secret", "base-image", "image", "subscription",
                                                   "eventsource", "api"))
    create.add_argument("name", nargs="?")
    create.add_argument("path", nargs="?", metavar="FILE",
                        help="the function's .py, the secret's .json, the base image's registry reference, "
                             "or the API's function")
    create.add_argument("-f", "--file", help="a YAML file of documents with kind: Function | Secret | "
                                             "BaseImage | Image | Subscription | EventSource | API")
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
    create.add_argument("--driver", help="function: where it runs, e.g. local or container; several: "
                        "a,b (failover, in order) or a=0.9,b=0.1 (split by weight)")
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
    create.add_argument("--method", action="append", metavar="METHOD", help="api: an HTTP method (repeatable; GET)")
    create.add_argument("--path", dest="api_paths", action="append", metavar="PATH",
                        help="api: a path template such as /hello/{name} (repeatable)")
    create.add_argument("--host", action="append", metavar="HOST", help="api: a host name it answers on (repeatable)")
    create.add_argument("--cors", action="store_true", help="api: allow cross-origin calls from any origin")
    create.add_argument("--auth", choices=("public", "token"), help="api: public, or a bearer token (public)")
    create.add_argument("--disable", action="store_true", help="api: create it disabled (its routes answer 404)")

    update = commands.add_parser("update", help="update the functions and APIs a YAML file describes")
    update.add_argument("-f", "--file", required=True)

    get = commands.add_parser("get", help="list or show functions, runs and secrets")
    get.add_argument("what", choices=("functions", "function", "runs", "run", "secrets", "secret",
                                      "images", "image", "base-images", "base-image",
                                      "subscriptions", "subscription", "eventsources", "eventsource", "apis", "api",
                                      "deadletters"))
    get.add_argument("name", nargs="?", help="a function (for runs: only its runs) or secret "
                     "(for deadletters: a subscription)")
    get.add_argument("--last", action="store_true", help="runs: only the latest, in full")
    get.add_argument("--follow", action="store_true", help="runs: keep printing changes as they happen")
    get.add_argument("--status", help="runs: only this status")
    get.add_argument("--limit", type=int, default=20, help="runs: how many (default 20)")

    exe = commands.add_parser("exec", help="run a function")
    exe.add_argument("name")
    exe.add_argument("--input", help="the input as JSON")
    exe.add_argument("--wait", action="store_true", help="wait for the run and print its output")
    exe.add_argument("--driver", help="run it on this one of the function's drivers")

    replay = commands.add_parser("replay", help="deliver a dead letter's event again, as a new run")
    replay.add_argument("letter_id", metavar="LETTER_ID", help="from `dispatch get deadletters`")
    replay.add_argument("--wait", action="store_true", help="wait for the run and print it")

    cancel = commands.add_parser("cancel", help="stop a queued or running run")
    cancel.add_argument("run_id", metavar="RUN_ID")

    emitter = commands.add_parser("emit", help="publish a CloudEvent")
    emitter.add_argument("type", help="the event type, e.g. order.created")
    emitter.add_argument("--data", help="the event's data as JSON")
    emitter.add_argument("--source", help="the event's source (default: dispatch)")
    emitter.add_argument("--subject", help="the event's subject")
    emitter.add_argument("--id", help="the event's id (default: a fresh one)")

    delete = commands.add_parser("delete", help="delete a function or secret")
    delete.add_argument("kind", choices=("function", "secret", "image", "base-image", "subscription", "eventsource",
                                         "api"))
    delete.add_argument("name")
    store = commands.add_parser("store", help="work on a store itself: copy one into another")
    store.add_argument("action", choices=("copy",))
    store.add_argument("--from", dest="source", required=True, help="sqlite:PATH (a home or its dispatch.db)")
    store.add_argument("--to", dest="target", required=True, help="postgresql://... (or sqlite:PATH)")
    secrets = commands.add_parser("secrets", help="work on the store's secrets: rotate-key")
    secrets.add_argument("action", choices=("rotate-key",))
    commands.add_parser("gateway", help="serve the routes of APIs over HTTP (dispatch gateway --help)",
                        add_help=False)  # its arguments are the standalone gateway's own (main())
    add_iam_parsers(commands)
    for sub in commands.choices.values():  # `-o json` reads naturally after the command too
        if sub.prog.endswith(" iam"):
            continue  # its verbs take them (cli/iam.py)
        sub.add_argument("-o", "--output", choices=("table", "json", "yaml"), default=argparse.SUPPRESS)
        sub.add_argument("--org", default=argparse.SUPPRESS, help="the organization to work in")
    return top


COMMANDS = {"create": cmd_create, "update": cmd_update, "get": cmd_get, "exec": cmd_exec, "delete": cmd_delete,
            "emit": cmd_emit, "cancel": cmd_cancel, "replay": cmd_replay, "iam": cmd_iam, "whoami": cmd_whoami}


def main(argv: list[str] | None = None) -> int:
    """Run one command; 0 on success, 1 with one line on stderr on failure."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["gateway"]:  # a server of its own, with its own options: the gateway's
        from ..gateway.standalone import main as gateway

        return gateway(argv[1:])
    args = parser().parse_args(argv)
    try:
        if args.command == "login":
            cmd_login(args)
        elif args.command == "logout":
            cmd_logout(args)
        elif args.command == "store":
            cmd_store_copy(args)
        elif args.command == "secrets":
            cmd_secrets_rotate_key(args)
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


__all__ = ["main", "parser"]
