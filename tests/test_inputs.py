"""dispatch_kernel.inputs: the one reader of JSON given as text (inline, or a file holding it),
and of key=value pairs, with errors that name what was being read."""

from __future__ import annotations

import pytest

from dispatch_kernel.inputs import json_or_file, typed_json
from dispatch_kernel.model import InvalidRequestError


@pytest.mark.parametrize("text, value", [
    ('{"type": "object"}', {"type": "object"}),
    ("  [1, 2]\n", [1, 2]),
    ('"text"', "text"),
    ("-3.5", -3.5),
    ("0", 0),
    ("true", True),
    ("false", False),
    ("null", None),
])
def test_inline_json_is_read_as_json(text, value):
    assert json_or_file(text, "--schema-in") == value


def test_a_file_holding_json_is_read(tmp_path):
    path = tmp_path / "schema.json"
    path.write_text('{"type": "integer"}')
    assert json_or_file(str(path), "--schema-in") == {"type": "integer"}
    assert json_or_file(f"  {path}  ", "--schema-in") == {"type": "integer"}  # as a shell may pass it


def test_a_file_under_the_home_directory_is_found_by_tilde(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "config.json").write_text("[true]")
    assert json_or_file("~/config.json", "--config") == [True]


def test_a_mistake_in_inline_json_is_reported_as_json(tmp_path, monkeypatch):
    # not as a missing file: the text looks like JSON, so that is what it was meant to be
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidRequestError, match=r"^--schema-in is not valid JSON: "):
        json_or_file('{"type": object}', "--schema-in")


def test_text_that_is_neither_json_nor_a_file_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for text in ("schema.json", "", "   "):
        with pytest.raises(InvalidRequestError, match=r"^--config is neither inline JSON nor a file: ") as info:
            json_or_file(text, "--config")
        assert repr(text) in str(info.value)  # the text as given, so the user sees what was read


def test_a_directory_is_not_a_file(tmp_path):
    with pytest.raises(InvalidRequestError, match="neither inline JSON nor a file"):
        json_or_file(str(tmp_path), "--config")


def test_a_file_that_does_not_hold_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(InvalidRequestError) as info:
        json_or_file(str(path), "schema_in")
    assert str(info.value).startswith(f"schema_in file {path} is not valid JSON: ")


def test_a_file_named_like_json_is_read_when_the_inline_text_is_not_json(tmp_path, monkeypatch):
    # a file called "-schema" starts like a negative number; being a file, it is read
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-schema").write_text('{"from": "file"}')
    assert json_or_file("-schema", "--schema-in") == {"from": "file"}


def test_key_value_pairs_are_read_and_a_word_without_a_key_is_refused():
    from dispatch_kernel.inputs import key_values

    assert key_values(["a=1", "b=x=y", "c="], "key=value") == {"a": "1", "b": "x=y", "c": ""}
    assert key_values([], "key=value") == {}
    for word in ("novalue", "=1"):
        with pytest.raises(InvalidRequestError, match=f"expected --filter attribute=value, got '{word}'"):
            key_values([word], "--filter attribute=value")


@pytest.mark.parametrize("text, value", [
    ('{"name": "Lin"}', {"name": "Lin"}),
    ("""'{"name": "Lin"}'""", {"name": "Lin"}),
    ('"Lin"', "Lin"),
    ("""'"Lin"'""", "Lin"),
    ("[1, 2]", [1, 2]),
    ("'[1, 2]'", [1, 2]),
    ("3", 3),
])
def test_typed_json_reads_the_bare_and_the_shell_quoted_form(text, value):
    assert typed_json(text, "the input") == value


@pytest.mark.parametrize("text", ["{bad", "'{bad'", "'{\"a\": 1}' extra", "'unbalanced"])
def test_typed_json_reports_a_mistake_as_json(text):
    with pytest.raises(InvalidRequestError, match="the input is not valid JSON"):
        typed_json(text, "the input")
