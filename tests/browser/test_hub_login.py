"""A team's Dispatch behind JupyterHub and OpenID Connect, in a real browser.

The set-up is what an administrator deploys (hub.py): a real OpenID Connect provider (npm's
`oidc-provider`) with users in groups, a real JupyterHub signing them in through it with
oauthenticator's GenericOAuthenticator (groups from the `groups` claim), configurable-http-proxy,
and `jupyter dispatch` as the hub's service. The administrator gives group `ds` everything on
functions and runs in organization `data-science`; group `ops` gets nothing there.

Then, in headless Chromium, as a user would: Ada (group ds) signs in on the provider's form, the
hub starts her server, her notebook runs `dk.connect(org="data-science")`, deploys a function and
runs it, and the service knew her as `ada` of group `ds`. Bob (group ops) first mistypes his
password and is told so, then signs in: his notebook is refused everything in `data-science` (404,
as for an organization that does not exist), and the service still knows him as `bob` of `ops`.

Why it is long (a few minutes): it starts a node OIDC provider, the hub with its node proxy, the
Dispatch service, two users' JupyterLab servers and kernels, builds the function's environment and
drives two sign-ins through Chromium. The provider and the hub are started once per session.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from .conftest import chromium_session
from .hub import ADMIN_SERVICE, Hub, hub  # noqa: F401 (the fixture)
from .test_quickstart import _click_menu, _errors, _finished, _state, _summary, _wait_for

ORG = "data-science"
LOGIN_TIMEOUT = 120  # seconds from the provider's form to the user's JupyterLab (the hub spawns it)
PAGE_TIMEOUT = 90  # seconds until the notebook is open with its kernel ready
RUN_TIMEOUT = 240  # seconds for Run All Cells (the first deploy builds the function's environment)

ADA_CELLS = [
    "import os\nimport dispatch_kernel as dk\n\n"
    f"client = dk.connect(org={ORG!r})\n"
    "me = client.whoami()\n"
    "print('service', os.environ['DISPATCH_URL'])\n"
    "print('subject', me['subject'], 'groups', ','.join(me['groups']))",
    "def add(x, y):\n    return x + y\n\n"
    "add_fn = client.deploy(add)\n"
    "print('result', add_fn(2, 3))",
]
BOB_CELLS = [
    "import dispatch_kernel as dk\n\n"
    f"client = dk.connect(org={ORG!r})\n"
    "me = dk.connect().whoami()\n"
    "print('subject', me['subject'], 'groups', ','.join(me['groups']))",
    "def refused(call):\n"
    "    try:\n"
    "        call()\n"
    "    except dk.DispatchError as exc:\n"
    "        return f'{type(exc).__name__} {exc.code}'\n"
    "    return 'allowed'\n\n"
    "def sneaky(x):\n    return x\n\n"
    "print('list', refused(client.list_functions))\n"
    "print('call', refused(lambda: client.call('add', 2, 3)))\n"
    "print('deploy', refused(lambda: client.deploy(sneaky)))",
]


def _write_notebook(folder: Path, cells: list[str]) -> str:
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in cells],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(nb, folder / "team.ipynb")
    return "team.ipynb"


def _sign_in(driver: Any, hub: Hub, user: str, password: str) -> None:
    """The hub's login page, its button, then the provider's form, as a user fills it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 30)
    if "/hub/login" not in driver.current_url:
        driver.get(f"{hub.url}/hub/login")
        wait.until(ec.element_to_be_clickable((By.PARTIAL_LINK_TEXT, "Sign in with Test OIDC"))).click()
    wait.until(lambda d: d.current_url.startswith(hub.issuer + "/interaction/"))
    field = wait.until(ec.element_to_be_clickable((By.ID, "username")))
    field.clear()
    field.send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "submit").click()


def _signed_in(driver: Any, hub: Hub, user: str) -> None:
    """Wait (bounded) until the hub has started the user's server and shows its JupyterLab."""
    _wait_for(f"{user}'s JupyterLab after signing in", LOGIN_TIMEOUT,
              lambda: driver.current_url.startswith(f"{hub.url}/user/{user}/lab"),
              lambda: f"the browser is at {driver.current_url}\n{hub.log_tail()}")


def _run_notebook(driver: Any, hub: Hub, user: str, path: str) -> dict[str, Any]:
    """Open the notebook in the user's JupyterLab, Run All Cells, return what the page shows."""
    state: dict[str, Any] | None = None

    def probe() -> dict[str, Any] | None:
        nonlocal state
        state = _state(driver, path)
        return state

    def describe() -> str:
        return f"the page shows:\n{_summary(state)}\n{hub.log_tail()}"

    driver.get(f"{hub.url}/user/{user}/lab/tree/{path}")
    _wait_for(f"{user}'s notebook to open with an idle kernel", PAGE_TIMEOUT,
              lambda: (s := probe()) and s["ready"] and s["kernel"] == "idle" and s["cells"], describe)
    _click_menu(driver, "Run", "Run All Cells")
    _wait_for(f"{user}'s Run All Cells to finish", RUN_TIMEOUT,
              lambda: _finished(probe()) and (time.sleep(1) or _finished(probe())), describe)
    assert _errors(state) == [], describe()
    assert all(c["execution_count"] is not None for c in state["cells"]), describe()
    return state


def _printed(state: dict[str, Any]) -> dict[str, str]:
    """What the cells printed, as {first word: the rest of the line}."""
    lines = [line for cell in state["cells"] for out in cell["outputs"] if out["name"] == "stdout"
             for line in out["text"].splitlines() if line.strip()]
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] if " " in line else "" for line in lines}


@pytest.mark.timeout(900)
def test_team_members_sign_in_through_oidc_and_policies_decide_what_each_may_do(
        hub: Hub, chromium: tuple[Path, Path], tmp_path: Path) -> None:
    # The administrator: an organization and a policy for group ds, through the service's REST API.
    admin = hub.admin_token
    status, body = hub.request("/services/dispatch/dispatch/v1/iam/organizations", admin, "POST", {"name": ORG})
    assert status == 201, (status, body)
    rule = {"subjects": ["group:ds"], "actions": ["*"], "resources": ["functions", "runs"]}
    status, body = hub.request("/services/dispatch/dispatch/v1/iam/policies", admin, "POST",
                               {"name": "ds-devs", "rules": [rule]}, {"X-Dispatch-Org": ORG})
    assert status == 201, (status, body)

    # Ada, group ds: signs in on the provider's form; her notebook deploys and runs a function.
    ada = hub.users["ada"]
    path = _write_notebook(hub.home("ada"), ADA_CELLS)
    with chromium_session(tmp_path / "ada", chromium) as browser:
        _sign_in(browser, hub, "ada", ada["password"])
        _signed_in(browser, hub, "ada")
        printed = _printed(_run_notebook(browser, hub, "ada", path))
    assert printed["service"] == hub.service_url  # the hub pointed her kernel at the service
    assert printed["subject"] == "ada groups ds"  # the service knows her, and her group from the claim
    assert printed["result"] == "5"

    # The service holds the function in data-science, created by ada, and ran it as her.
    status, functions = hub.request("/services/dispatch/dispatch/v1/functions", admin, headers={"X-Dispatch-Org": ORG})
    assert status == 200, functions
    assert [(f["name"], f["created_by"]) for f in functions["items"]] == [("add", "ada")]
    status, runs = hub.request("/services/dispatch/dispatch/v1/runs", admin, headers={"X-Dispatch-Org": ORG})
    assert status == 200, runs
    assert [(r["function"], r["status"], r["output"]) for r in runs["items"]] == [("add", "SUCCEEDED", 5)]

    # Bob, group ops, in a browser of his own: a wrong password is refused on the provider's form.
    from selenium.webdriver.common.by import By

    bob = hub.users["bob"]
    path = _write_notebook(hub.home("bob"), BOB_CELLS)
    with chromium_session(tmp_path / "bob", chromium) as browser:
        _sign_in(browser, hub, "bob", "not-" + bob["password"])
        _wait_for("the provider to say the password is wrong", 30,
                  lambda: "Wrong username or password" in browser.find_element(By.TAG_NAME, "body").text)
        assert browser.current_url.startswith(hub.issuer)
        # Then the right one: his notebook is refused everything in data-science, as a stranger.
        _sign_in(browser, hub, "bob", bob["password"])
        _signed_in(browser, hub, "bob")
        printed = _printed(_run_notebook(browser, hub, "bob", path))
    assert printed["subject"] == "bob groups ops"
    assert printed["list"] == "NotFoundError 404"
    assert printed["call"] == "NotFoundError 404"
    assert printed["deploy"] == "NotFoundError 404"
    status, functions = hub.request("/services/dispatch/dispatch/v1/functions", admin, headers={"X-Dispatch-Org": ORG})
    assert [f["name"] for f in functions["items"]] == ["add"]  # nothing of bob's got in


def test_the_service_serves_dispatch_only_and_to_hub_credentials_only(hub: Hub) -> None:
    # Its kernels, terminals and files would run code as the service itself, past every policy.
    for path in ("api/kernels", "api/terminals", "api/contents", "api/sessions"):
        status, _ = hub.request(f"/services/dispatch/{path}", hub.admin_token)
        assert status == 403, path
    status, me = hub.request("/services/dispatch/dispatch/v1/iam/whoami", hub.admin_token)
    assert status == 200 and me["subject"] == f"service:{ADMIN_SERVICE}", me  # not a user of that name
    # A token the hub does not know is no one.
    status, _ = hub.request("/services/dispatch/dispatch/v1/functions", "not-a-hub-token")
    assert status == 403
