"""The one error a bad configuration raises, worded for the person reading a crash log."""

from __future__ import annotations

import re
from collections.abc import Callable

from pydantic import ValidationError

PREFIX = "invalid configuration: "

_SOURCE_ERROR = re.compile(r'error parsing value for field "(?P<field>[^"]+)"')


class ConfigError(Exception):
    """A setting is missing or invalid; ``str(err)`` is one line naming the key and the problem,
    always starting ``invalid configuration:`` so every such stop reads the same."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message if message.startswith(PREFIX) else PREFIX + message)


def describe_source_error(err: ValueError, key_for: Callable[[str], str]) -> ConfigError:
    """pydantic-settings' own failure to decode a structured value (JSON) before validation."""
    found = _SOURCE_ERROR.search(str(err))
    if found is None:
        return ConfigError(str(err))
    return ConfigError(f"{key_for(found['field'])}: is not valid JSON")


def describe(
    err: ValidationError, key_for: Callable[[str], str], secret_fields: frozenset[str] = frozenset()
) -> ConfigError:
    """Turn pydantic's multi-line report into one line: ``KEY: problem; KEY2: problem``.

    ``key_for`` maps a field name to what the operator actually set (an environment variable or an
    SSM parameter name), so the message points at the thing to fix rather than at Python. The value
    given is quoted to help, except for secret fields, whose value must never reach a log.
    """
    problems = []
    for item in err.errors(include_url=False):
        field = str(item["loc"][0]) if item["loc"] else "?"
        inner = "".join(f".{part}" for part in item["loc"][1:])  # inside a JSON value: which key
        message = item["msg"][0].lower() + item["msg"][1:] if item["msg"] else "invalid"
        if item["type"] == "missing":
            message = "is required but not set"
        elif item["type"] == "value_error" and "error" in item.get("ctx", {}):
            message = str(item["ctx"]["error"])  # our own validators' words, without pydantic's prefix
        elif field not in secret_fields and not isinstance(item.get("input"), dict | list | None):
            message = f"{message} (got {_clip(item['input'])!r})"
        problems.append(f"{key_for(field)}{inner}: {message}")
    return ConfigError("; ".join(problems))


def _clip(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
