"""Reading a request body as JSON within bounds, so malformed-but-parseable input is a 400.

Python's `json.loads` accepts what a server must not: nesting deep enough to raise RecursionError,
integers of thousands of digits (ValueError past `sys.int_info.str_digits_check_threshold`, and slow
to convert before that), `NaN`/`Infinity`. Each of those is refused here with InvalidInput naming
the body, before any model sees it; the sizes the schemas allow are far below these bounds.
"""

from __future__ import annotations

import json
from typing import Any

from acgs_server.errors import InvalidInput

MAX_DEPTH = 16  # a structured body nests 3 levels deep (body, context, list)
MAX_NUMBER_CHARS = 32  # a float64 needs at most 24; an int of the schemas' ranges far fewer


def _depth(raw: bytes) -> int:
    """Deepest `[`/`{` nesting outside strings (a linear scan; only run when it could matter)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise InvalidInput("body", f"request body has a {len(text)}-digit integer: expected at most "
                           f"{MAX_NUMBER_CHARS} characters per number", text[:40] + "…")
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise InvalidInput("body", f"request body has a {len(text)}-character number: expected at most "
                           f"{MAX_NUMBER_CHARS} characters per number", text[:40] + "…")
    return float(text)


def _no_constant(name: str) -> Any:
    raise InvalidInput("body", f"request body contains {name}: not valid JSON (expected a finite number)", name)


def parse_json_body(raw: bytes) -> Any:
    """The JSON value of `raw`; InvalidInput (400) for anything this server will not parse."""
    # Cheap pre-check in C: a body with fewer brackets than the limit cannot nest deeper.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _depth(raw) > MAX_DEPTH:
        raise InvalidInput("body", f"request body nests deeper than {MAX_DEPTH} levels")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInput("body", f"request body is not UTF-8: {error}") from error
    try:
        return json.loads(text, parse_int=_bounded_int, parse_float=_bounded_float, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise InvalidInput("body", f"request body is not valid JSON: {error}") from error
    except RecursionError as error:  # the depth check above should make this unreachable
        raise InvalidInput("body", "request body nests too deeply") from error
