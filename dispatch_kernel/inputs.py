"""What people type into a magic, a command or a keyword argument: JSON, inline or in a file,
and `key=value` pairs.

One reader of each for every face (`%%dispatch --schema-in`, `dispatch create --schema-in` and
`--config`, `deploy(schema_in="...")` on either client, `%dispatch secret NAME k=v`,
`--filter attribute=value`), so the same text means the same thing everywhere.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from .model import InvalidRequestError

_INLINE_STARTS = tuple('{["-0123456789')


def json_or_file(text: str, what: str) -> Any:
    """The value of `text`: inline JSON, else the JSON in the file it names.

    Text that looks like JSON (an object, an array, a string, a number, true, false or null)
    is read as JSON, and a mistake in it is reported as such rather than as a missing file.
    """
    stripped = text.strip()
    inline_error: ValueError | None = None
    if stripped.startswith(_INLINE_STARTS) or stripped in ("true", "false", "null"):
        try:
            return json.loads(stripped)
        except ValueError as exc:
            inline_error = exc
    path = Path(stripped).expanduser()
    if not stripped or not path.is_file():
        if inline_error is not None:
            raise InvalidRequestError(f"{what} is not valid JSON: {inline_error}")
        raise InvalidRequestError(f"{what} is neither inline JSON nor a file: {text!r}")
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise InvalidRequestError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise InvalidRequestError(f"{what} file {path} is not valid JSON: {exc}") from None


def typed_json(text: str, what: str) -> Any:
    """The JSON value of the rest of a magic's line, `text`, in either form people type it.

    Bare (`{"name": "Lin"}`) is read as typed; shell-quoted (`'{"name": "Lin"}'`, the form
    `%%dispatch --schema-in '...'` needs) is unquoted the way that option is, as one word, and
    then read by json_or_file, so a file path works here too. Bare text is tried first because
    shell splitting would strip the double quotes JSON needs.
    """
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except ValueError as exc:
        bare_error = exc
    try:
        words = shlex.split(stripped)
    except ValueError:  # an unbalanced quote: it was meant as JSON, report the JSON mistake
        raise InvalidRequestError(f"{what} is not valid JSON: {bare_error}") from None
    if len(words) != 1:
        raise InvalidRequestError(f"{what} is not valid JSON: {bare_error}")
    return json_or_file(words[0], what)


def key_values(words: list[str], form: str) -> dict[str, str]:
    """`key=value` words as a dict; a word without `=` or without a key is an
    InvalidRequestError that shows the expected `form`."""
    pairs = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise InvalidRequestError(f"expected {form}, got {word!r}")
        pairs[key] = value
    return pairs


__all__ = ["json_or_file", "key_values", "typed_json"]
