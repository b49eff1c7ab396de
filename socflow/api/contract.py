"""The error answers every API route may give, documented once in the OpenAPI schema.

401 no valid bearer token (checked before any body is read), 403 the role may not, 404 no such row,
409 a conflict with the current state (a decision already taken, a stale draft, the last admin token),
413 a body or batch over its limit, 422 input refused (the field and the reason).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorOut(BaseModel):
    detail: Any
    code: str | None = None
    field: str | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no valid bearer token or session"},
    403: {"model": ErrorOut, "description": "the caller's role may not do this"},
    404: {"model": ErrorOut, "description": "no such row"},
    409: {"model": ErrorOut, "description": "conflicts with the current state"},
    413: {"model": ErrorOut, "description": "a body or batch over its limit"},
    422: {"model": ErrorOut, "description": "input refused: the field and the reason"},
}
