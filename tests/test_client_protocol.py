"""The Client protocol is the whole surface: both clients have exactly its public methods."""

import inspect

import dispatch_kernel as dk


def _public_methods(cls) -> set[str]:
    return {name for name, member in inspect.getmembers(cls, callable)
            if not name.startswith("_") and not isinstance(member, type)}


PROTOCOL = _public_methods(dk.Client)


def test_the_protocol_names_every_operation_the_faces_use():
    for name in ("deploy", "call", "spawn", "map", "invoke", "cancel_run", "dead_letters", "describe",
                 "watch_runs", "emit", "create_image", "close"):
        assert name in PROTOCOL, name


def test_each_client_has_exactly_the_methods_of_the_protocol():
    for client in (dk.LocalClient, dk.HttpClient):
        methods = _public_methods(client)
        assert methods - PROTOCOL == set(), f"{client.__name__} has methods the protocol lacks"
        assert PROTOCOL - methods == set(), f"{client.__name__} lacks methods of the protocol"


def test_the_clients_take_the_protocols_arguments():
    for name in sorted(PROTOCOL):
        wanted = [p for p in inspect.signature(getattr(dk.Client, name)).parameters.values()]
        for client in (dk.LocalClient, dk.HttpClient):
            given = {p.name: p for p in inspect.signature(getattr(client, name)).parameters.values()}
            for parameter in wanted:
                if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                    continue
                assert parameter.name in given, f"{client.__name__}.{name} lacks {parameter.name}"
                assert given[parameter.name].kind == parameter.kind, f"{client.__name__}.{name}({parameter.name})"


def test_both_clients_are_clients(client, tmp_path):
    assert isinstance(client, dk.Client)
    with dk.HttpClient("http://127.0.0.1:9/") as remote:  # nothing is sent until asked
        assert isinstance(remote, dk.Client)
        assert remote.describe() == "the Dispatch server at http://127.0.0.1:9/"
