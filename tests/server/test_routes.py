"""The routes the extension serves, the handlers' paths and the OpenAPI document agree."""

import re

from dispatch_kernel.server import openapi
from dispatch_kernel.server.base import NotFoundHandler
from dispatch_kernel.server.routes import HANDLERS, methods, pattern, routes

METHODS = ("get", "post", "put", "patch", "delete")


def _spec_operations() -> dict[str, set[str]]:
    return {path.strip("/"): {m for m in item if m in METHODS} for path, item in openapi.spec()["paths"].items()}


def test_every_path_of_the_document_has_a_handler_and_every_handler_a_path():
    assert {handler.path for handler in HANDLERS} == set(_spec_operations())
    assert len({handler.path for handler in HANDLERS}) == len(HANDLERS)  # one handler a path


def test_each_handler_implements_exactly_the_methods_the_document_lists():
    operations = _spec_operations()
    for handler in HANDLERS:
        assert methods(handler) == operations[handler.path], handler.__name__


def test_every_route_is_a_handlers_path_and_the_last_one_catches_the_rest():
    served = routes()
    assert [handler for _, handler, _ in served[:-1]] and set(h for _, h, _ in served[:-1]) == set(HANDLERS)
    assert served[-1][1] is NotFoundHandler
    concrete = [(route, handler) for route, handler, _ in served[:-1]]
    for path in _spec_operations():
        sample = re.sub(r"\{[^}]+\}", "some-name", path)
        first = next(handler for route, handler in concrete if re.fullmatch(route, f"dispatch/v1/{sample}"))
        assert first.path == path, (path, first.path)  # runs/stream is not runs/{id}


def test_a_path_template_becomes_one_segment_per_parameter():
    assert pattern("functions") == r"dispatch/v1/functions/?"
    assert pattern("runs/{id}/cancel") == r"dispatch/v1/runs/([^/]+)/cancel/?"
    assert re.fullmatch(pattern("functions/{name}"), "dispatch/v1/functions/add")
    assert not re.fullmatch(pattern("functions/{name}"), "dispatch/v1/functions/a/b")
