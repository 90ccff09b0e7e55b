"""Opaque list cursors: a JSON value, base64url-encoded."""

import base64
import json
from typing import Any

from services.errors import InvalidInput


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, ensure_ascii=False).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidInput("分页游标无效", detail=[{"field": "cursor", "reason": "invalid"}]) from error
