"""secrets and secrets/{name}: values go in, come back from one GET, never from a list."""

import pytest

WORD = "correct-horse-battery-staple"


async def test_create_list_get_delete(api):
    reply = await api("POST", "secrets", {"name": "login", "values": {"user": "ada", "password": WORD}})
    assert reply.status == 201
    assert reply.json["keys"] == ["password", "user"] and WORD not in reply.body.decode()
    listed = await api("GET", "secrets")
    assert [s["name"] for s in listed.json["items"]] == ["login"] and WORD not in listed.body.decode()
    assert "values" not in listed.json["items"][0] and "ciphertext" not in listed.json["items"][0]
    one = await api("GET", "secrets/login")
    assert one.json["values"] == {"user": "ada", "password": WORD} and "ciphertext" not in one.json
    assert (await api("DELETE", "secrets/login")).status == 204
    assert (await api("GET", "secrets/login")).status == 404
    assert (await api("DELETE", "secrets/login")).status == 404


async def test_a_taken_name_is_a_conflict(api):
    assert (await api("POST", "secrets", {"name": "s", "values": {}})).status == 201
    assert (await api("POST", "secrets", {"name": "s", "values": {"k": "v"}})).status == 409


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"name": "s", "values": {"port": 5432}}', "$.values.port"),
        ('{"name": "s"}', "'values' is a required property"),
        ('{"name": "no spaces", "values": {}}', "not a valid secret name"),
        ('{"name": "s", "values": {}, "extra": 1}', "extra"),
        ("[]", "is not of type 'object'"),
        ("{", "not valid JSON"),
    ],
)
async def test_malformed_secrets_are_400(api, body, message):
    reply = await api("POST", "secrets", raw=body)
    assert reply.status == 400 and message in reply.json["message"]
    assert (await api("GET", "secrets")).json == {"items": []}


async def test_an_oversized_secret_is_413(api):
    reply = await api("POST", "secrets", {"name": "big", "values": {"k": "x" * (7 * 1024 * 1024)}})
    assert reply.status == 413
