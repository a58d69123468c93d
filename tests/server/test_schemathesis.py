"""Schemathesis against a live server: generated requests, valid and invalid, find no 5xx and
no response that breaks the OpenAPI document (bounded: a few dozen examples per operation)."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import checks

from dispatch_kernel.server import openapi

from .live import BASE_URL, ThreadedServer

EXAMPLES = 25
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]


@pytest.fixture
def server(tmp_path, monkeypatch):
    # Generated requirements must never send a build to a package registry.
    monkeypatch.setenv("UV_OFFLINE", "1")
    the_server = ThreadedServer(tmp_path / "home", tmp_path / "work")
    yield the_server
    the_server.stop()


def operations():
    schema = schemathesis.openapi.from_dict(openapi.document(BASE_URL))
    found = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path != "/runs/stream":  # an endless stream: tested in test_runs.py
            found.append(operation)
    return found


def test_generated_requests_find_no_server_error_and_no_spec_violation(server):
    base = f"http://127.0.0.1:{server.port}{BASE_URL.rstrip('/')}/dispatch/v1"
    auth = {"Authorization": f"token {server.token}"}
    failures = []
    for operation, mode in [(op, mode) for op in operations() for mode in schemathesis.GenerationMode]:
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(mode))
        def exercise(case):
            response = case.call(base_url=base, headers=auth, timeout=30)
            case.validate_response(response, checks=CHECKS)

        try:
            exercise()
        except Unsatisfiable:
            assert mode is schemathesis.GenerationMode.NEGATIVE  # nothing in it can be made invalid
        except Exception as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
