"""JSON from outside (HTTP bodies, S3/SQS/MinIO events) parsed with bounds.

``json.loads`` alone accepts ``NaN``/``Infinity`` (not JSON, and they turn range checks such as
``MaxLabels >= 0`` into nonsense) and recurses once per nesting level, so a body of 100 000 ``[``
raises ``RecursionError`` — an exception every caller forgot, i.e. a 500 or a crashed consumer.
``loads`` here checks the nesting depth first with one linear scan (strings skipped by a regular
expression, so a 7 MB base64 string costs milliseconds), then parses with non-finite numbers
refused. Hand-written because no well-kept library offers a depth limit for the standard parser;
the scan is 20 lines.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pixdex.errors import JsonError

#: Deeper than any payload pixdex reads (SNS in SQS in a Lambda batch is ~8 levels of JSON).
MAX_DEPTH = 64

# A JSON string (escapes included), written as an unrolled loop: linear, no backtracking.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def _reject_constant(name: str) -> Any:
    raise JsonError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JsonError(f"number {text[:40]} is out of range")
    return value


def check_depth(text: str, max_depth: int = MAX_DEPTH) -> None:
    """Raise JsonError when arrays/objects nest deeper than ``max_depth``."""
    depth = 0
    for match in _BRACKETS.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > max_depth:
                raise JsonError(f"JSON nested deeper than {max_depth} levels")
        else:
            depth -= 1


def loads(data: bytes | bytearray | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``data`` (UTF-8 bytes or text); JsonError for anything that is not plain JSON
    within ``max_depth`` levels: bad syntax, bad UTF-8, NaN/Infinity (also as ``1e999``), too
    deep."""
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise JsonError("not UTF-8 text") from None
    else:
        text = data
    check_depth(text, max_depth)
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise JsonError(f"not JSON ({exc.msg} at char {exc.pos})") from None
    except RecursionError:  # unreachable after check_depth; kept so it can never be a 500
        raise JsonError("JSON nested too deeply") from None
