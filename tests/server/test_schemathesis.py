"""Schemathesis against a live server: generated requests, valid and invalid, find no 5xx and
no response that breaks the OpenAPI document (bounded: a few dozen examples per operation, each
operation and mode a test of its own, all on one server)."""

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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # Generated requirements must never send a build to a package registry.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UV_OFFLINE", "1")
        root = tmp_path_factory.mktemp("schemathesis")
        the_server = ThreadedServer(root / "home", root / "work")
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


OPERATIONS = [(op, mode) for op in operations() for mode in schemathesis.GenerationMode]


@pytest.mark.parametrize(("operation", "mode"), OPERATIONS,
                         ids=[f"{op.method.upper()} {op.path} {mode.value}" for op, mode in OPERATIONS])
def test_generated_requests_find_no_server_error_and_no_spec_violation(server, operation, mode):
    base = f"http://127.0.0.1:{server.port}{BASE_URL.rstrip('/')}/dispatch/v1"
    auth = {"Authorization": f"token {server.token}"}

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
