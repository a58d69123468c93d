"""`dispatch iam` and `dispatch whoami` against a live server: organizations, policies, service
accounts (from a PEM file and from `-f` documents), explain, the last administrator, and a
service account's JWT as the CLI's token."""

from __future__ import annotations

import json

import yaml

from tests.identity.keys import key_pair, token
from tests.test_cli import assert_one_line_error, dispatch, server, workdir  # noqa: F401  (fixtures)


def test_iam_commands_against_a_live_server(workdir, server):  # noqa: F811
    dispatch("login", server.url, "--token", server.token)
    me = json.loads(dispatch("whoami", "-o", "json").stdout)
    assert me["organizations"] == ["default"] and me["rules"][0]["resources"] == ["*"]
    assert "created organization data-science" in dispatch("iam", "create", "organization", "data-science").stdout
    dispatch("iam", "create", "policy", "ds-devs", "--org", "data-science", "--subject", "group:ds",
             "--subject", "ada@example.org", "--action", "*", "--resource", "functions", "--resource", "runs")
    private, public = key_pair("EC")
    (workdir / "etl.pub.pem").write_text(public)
    made = dispatch("iam", "create", "serviceaccount", "etl", "--org", "data-science", "--public-key", "etl.pub.pem")
    assert "its JWTs carry iss data-science/etl" in made.stdout
    (workdir / "iam.yaml").write_text(yaml.safe_dump_all([
        {"kind": "Policy", "name": "ds-callers", "rules": [{"subjects": ["serviceaccount:etl"],
                                                            "resources": ["functions/nightly-*"],
                                                            "actions": ["invoke", "create", "get"]}]},
        {"kind": "Organization", "name": "finance"}]))
    created = dispatch("--org", "data-science", "create", "-f", "iam.yaml").stdout
    assert "created organization finance" in created and "created policy ds-callers" in created
    policies = dispatch("iam", "get", "policies", "--org", "data-science").stdout.splitlines()
    assert [line.split()[0] for line in policies[1:]] == ["admins", "ds-callers", "ds-devs"]
    allowed = dispatch("iam", "explain", "serviceaccount:etl", "invoke", "functions/nightly-a", "--org", "data-science")
    assert allowed.stdout.startswith("ALLOWED: ") and "policy data-science/ds-callers" in allowed.stdout
    denied = dispatch("iam", "explain", "serviceaccount:etl", "delete", "functions/nightly-a", "--org", "data-science")
    assert denied.stdout.startswith("DENIED: ")
    assert_one_line_error(dispatch("iam", "delete", "policy", "admins", "--org", "data-science", ok=False),
                          "without an administrator")
    assert_one_line_error(dispatch("iam", "create", "policy", "p", "--subject", "x", ok=False), "needs --action")
    listed = json.loads(dispatch("iam", "get", "organizations", "-o", "json").stdout)
    assert [o["name"] for o in listed] == ["data-science", "default", "finance"]
    # The service account's JWT as the CLI's token: it may make and run nightly functions, nothing else.
    jwt = token(private, "data-science/etl", expires_in=600)
    (workdir / "nightly.py").write_text("def handle(ctx, payload):\n    return payload\n")
    as_etl = ["--url", server.url, "--token", jwt]
    dispatch(*as_etl, "create", "function", "nightly-echo", "nightly.py")
    assert json.loads(dispatch(*as_etl, "exec", "nightly-echo", "--input", "7", "--wait").stdout) == 7
    assert_one_line_error(dispatch(*as_etl, "get", "functions", ok=False),
                          "serviceaccount:etl may not get functions in organization 'data-science'")
    assert_one_line_error(dispatch(*as_etl, "--org", "default", "get", "functions", ok=False),
                          "issued for organization 'data-science'")
    assert "deleted serviceaccount etl" in dispatch("iam", "delete", "serviceaccount", "etl",
                                                   "--org", "data-science").stdout
    assert_one_line_error(dispatch(*as_etl, "exec", "nightly-echo", "--input", "7", "--wait", ok=False),
                          "no service account data-science/etl")
