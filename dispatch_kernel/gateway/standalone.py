"""`dispatch gateway --port P` (or `jupyter dispatch-gateway`): the API gateway in a process of
its own, what several replicas would run behind a load balancer.

It builds its own core over the same store as the Jupyter server (the same home, or the same
store plug-in and options) and serves every route at its root: `/{org}/path`, and the routes on
hosts of its organization. Its routes follow the store: an API created, changed or deleted
anywhere is served (or not) without a restart. It runs the routes' functions in workers of its
own and starts no event sources.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

DEFAULT_BODY_LIMIT = 6 * 1024 * 1024


def parser() -> argparse.ArgumentParser:
    """The options of `dispatch gateway`."""
    top = argparse.ArgumentParser(prog="dispatch gateway",
                                  description="Serve the routes of dispatch APIs over HTTP (a standalone gateway).")
    top.add_argument("--port", type=int, default=8080, help="the port to listen on (default 8080)")
    top.add_argument("--address", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    top.add_argument("--home", help="the core's home (default: DISPATCH_HOME, else the user data directory)")
    top.add_argument("--store", default="sqlite", help="the store plug-in (default sqlite)")
    top.add_argument("--plugin-options", help="plug-in options as JSON, e.g. a store's connection")
    top.add_argument("--org", default="default", help="the organization whose routes on hosts it serves")
    top.add_argument("--token", action="append", default=None,
                     help="a credential `auth: token` routes accept as Authorization: Bearer (repeatable; "
                          "default: DISPATCH_TOKEN)")
    top.add_argument("--api-url", help="the Jupyter server whose REST API shows runs, for 202 answers "
                                       "(default: DISPATCH_URL)")
    top.add_argument("--max-body-size", type=int, default=DEFAULT_BODY_LIMIT,
                     help=f"largest request body in bytes (default {DEFAULT_BODY_LIMIT:,}); larger ones get 413")
    top.add_argument("--log-level", default="WARNING", help="e.g. INFO to log every request")
    return top


async def serve(args: argparse.Namespace) -> None:
    """Build the core and the gateway, listen, and run until SIGTERM or SIGINT."""
    from tornado.httpserver import HTTPServer
    from tornado.web import Application

    from ..core import Dispatch
    from ..settings import Settings, default_home
    from .auth import authorized_callers
    from .handler import GatewayHandler
    from .service import Gateway

    options = json.loads(args.plugin_options) if args.plugin_options else {}
    home = Path(args.home) if args.home else default_home()
    settings = Settings(home=home, store=args.store, org=args.org, plugin_options=options, isolated=True,
                        events=False)
    loop = asyncio.get_running_loop()
    core = await loop.run_in_executor(None, Dispatch, settings)
    tokens = args.token if args.token is not None else [os.environ.get("DISPATCH_TOKEN", "")]
    api_url = args.api_url or os.environ.get("DISPATCH_URL")
    # Its tokens may call every route (no owner to check); service accounts as policies say.
    credentials = authorized_callers(core.identity, lambda: tokens, None)
    gateway = Gateway(core, org=args.org, max_body_size=args.max_body_size, credentials=credentials,
                      runs_url=f"{api_url.rstrip('/')}/dispatch/v1/runs/" if api_url else None)
    app = Application([(r"/.*", GatewayHandler, {"gateway": gateway, "prefix": "/"})],
                      log_function=_access_log)
    # A body over the limit is read up to a margin and answered 413; beyond it the connection
    # is closed, as tornado does.
    server = HTTPServer(app, max_body_size=args.max_body_size + 1024 * 1024, xheaders=False)
    server.listen(args.port, address=args.address)
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    print(f"dispatch gateway: serving the routes of {settings.home} on http://{args.address}:{args.port}/",
          file=sys.stderr, flush=True)
    try:
        await stopping.wait()
    finally:
        server.stop()
        gateway.close()
        await loop.run_in_executor(None, core.close)


def _access_log(handler) -> None:  # INFO: quiet unless asked, and cheap when quiet
    logger = logging.getLogger("dispatch.gateway.access")
    if logger.isEnabledFor(logging.INFO):
        request = handler.request
        logger.info("%d %s %s %.2fms", handler.get_status(), request.method, request.uri,
                    1000.0 * request.request_time())


def main(argv: list[str] | None = None) -> int:
    """Run the gateway until it is stopped; 0 after a clean stop."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # a home that cannot be opened, a port in use: one line, exit 1
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


__all__ = ["main", "parser", "serve"]
