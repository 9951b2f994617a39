"""Matrix errors: every failure a client sees is one of these, rendered as
``{"errcode": ..., "error": ...}`` with the spec's HTTP status."""

from __future__ import annotations

import math
from typing import Any


class MatrixError(Exception):
    def __init__(self, code: int, errcode: str, msg: str, **extra: Any) -> None:
        super().__init__(msg)
        self.code = code
        self.errcode = errcode
        self.msg = msg
        self.extra = extra
        # HTTP headers sent with the error response (Retry-After of a 429).
        self.headers: dict[str, str] = {}

    def to_json(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.msg, **self.extra}

    def __repr__(self) -> str:
        return f"MatrixError({self.code}, {self.errcode}, {self.msg!r})"


def Forbidden(msg: str = "Forbidden", **extra: Any) -> MatrixError:
    return MatrixError(403, "M_FORBIDDEN", msg, **extra)


def NotFound(msg: str = "Not found") -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", msg)


def Unrecognized(msg: str = "Unrecognized request", code: int = 404) -> MatrixError:
    return MatrixError(code, "M_UNRECOGNIZED", msg)


def NotJson(msg: str = "Content not JSON.") -> MatrixError:
    return MatrixError(400, "M_NOT_JSON", msg)


def BadJson(msg: str) -> MatrixError:
    return MatrixError(400, "M_BAD_JSON", msg)


def MissingParam(msg: str) -> MatrixError:
    return MatrixError(400, "M_MISSING_PARAM", msg)


def InvalidParam(msg: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", msg)


def UnknownToken(msg: str = "Unknown access token", soft_logout: bool = False) -> MatrixError:
    return MatrixError(401, "M_UNKNOWN_TOKEN", msg, soft_logout=soft_logout)


def MissingToken() -> MatrixError:
    return MatrixError(401, "M_MISSING_TOKEN", "Missing access token")


def LimitExceeded(retry_after_ms: int) -> MatrixError:
    # Synapse's body and header: retry_after_ms, and Retry-After in whole seconds, rounded up.
    err = MatrixError(429, "M_LIMIT_EXCEEDED", "Too Many Requests", retry_after_ms=retry_after_ms)
    err.headers["Retry-After"] = str(math.ceil(retry_after_ms / 1000))
    return err


def TooLarge(msg: str = "Request too large") -> MatrixError:
    return MatrixError(413, "M_TOO_LARGE", msg)


def GuestAccessForbidden(msg: str = "Guest access not allowed") -> MatrixError:
    return MatrixError(403, "M_GUEST_ACCESS_FORBIDDEN", msg)


def UserInUse(msg: str = "User ID already taken.") -> MatrixError:
    return MatrixError(400, "M_USER_IN_USE", msg)


def InvalidUsername(msg: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_USERNAME", msg)


def UnsupportedRoomVersion(msg: str = "Unsupported room version") -> MatrixError:
    return MatrixError(400, "M_UNSUPPORTED_ROOM_VERSION", msg)
