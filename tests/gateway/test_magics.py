"""`%%dispatch NAME --route ...` and `%dispatch apis` in a real IPython shell: the issue's cell,
its card's URLs, and the route answering over HTTP from the server the notebook is connected to."""

from __future__ import annotations

import json
import urllib.request

from tests.server.live import ThreadedServer
from tests.shell import run, shown

HELLO = '''def handle(ctx, payload):
    return {"greeting": f"hello {payload['name']}", "agent": ctx.http["headers"].get("user-agent")}
'''


def client_of(ip):
    return ip.magics_manager.registry["DispatchMagics"].client


def test_a_cell_with_routes_is_served_at_the_urls_its_card_shows(ip, home, tmp_path):
    server = ThreadedServer(home, tmp_path / "server")
    try:
        run(ip, f"%dispatch connect {server.url} --token {server.token}")
        result, captured = run(ip, '%%dispatch hello --route "GET,POST /hello/{name}" --route "GET /hi"\n' + HELLO)
        assert result.success, captured.stderr
        card = captured.outputs[-1].data
        url = f"{server.url}dispatch/http/default/hello/{{name}}"
        assert url in card["text/plain"] and f"{server.url}dispatch/http/default/hi" in card["text/plain"]
        assert f'href="{url}"' in card["text/html"]
        request = urllib.request.Request(url.replace("{name}", "Ada"), headers={"User-Agent": "curl/8.5"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.loads(answer.read()) == {"greeting": "hello Ada", "agent": "curl/8.5"}
        apis = {api.name: api for api in client_of(ip).list_apis()}
        assert (apis["hello"].methods, apis["hello"].paths) == (["GET", "POST"], ["/hello/{name}"])
        assert (apis["hello-2"].methods, apis["hello-2"].paths) == (["GET"], ["/hi"])
        listed = shown(run(ip, "%dispatch apis")[1])
        assert "hello-2" in listed and f"{server.url}dispatch/http/default/hi" in listed
    finally:
        run(ip, "%dispatch connect")  # back to the embedded client, then the server stops
        server.stop()


def test_running_the_cell_again_makes_its_routes_what_it_says(ip):
    run(ip, '%%dispatch hello --route "GET /a" --route "POST /b"\n' + HELLO)
    client = client_of(ip)
    client.create_api("kept", "hello", paths=["/kept"])  # not the cell's: left alone
    result, captured = run(ip, '%%dispatch hello --route "PUT /a"\n' + HELLO)
    assert result.success, captured.stderr
    apis = {api.name: (api.methods, api.paths) for api in client.list_apis()}
    assert apis == {"hello": (["PUT"], ["/a"]), "kept": (["GET"], ["/kept"])}
    assert "/default/a" in captured.outputs[-1].data["text/plain"]  # embedded: paths below a gateway's root
    run(ip, "%%dispatch hello\n" + HELLO)
    assert [api.name for api in client.list_apis()] == ["kept"]


def test_a_bad_route_deploys_nothing(ip):
    result, captured = run(ip, '%%dispatch hello --route "GET hello"\n' + HELLO)
    assert not result.success and "--route 'GET hello'" in str(result.error_in_exec)
    assert client_of(ip).list_functions() == [] and client_of(ip).list_apis() == []


def test_a_route_another_api_claims_is_an_error_after_the_deploy(ip):
    client_of(ip).create_api("taken", "other", paths=["/hello"])
    result, _ = run(ip, '%%dispatch hello --route "GET /hello"\n' + HELLO)
    assert not result.success and "taken" in str(result.error_in_exec)
    assert [f.name for f in client_of(ip).list_functions()] == ["hello"]  # deployed; the route refused
    assert [api.name for api in client_of(ip).list_apis()] == ["taken"]


def test_no_apis_is_said_plainly(ip):
    assert "no APIs" in shown(run(ip, "%dispatch apis")[1])
