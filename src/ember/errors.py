"""Ember's exception tree (and `shown`, to quote a caller's value in a message). Only the API layer turns
these into OpenAI error envelopes.

    EmberError                       500 server_error
    ├── InvalidRequest               400 invalid_request_error
    │   ├── ContextLengthExceeded    400 invalid_request_error / context_length_exceeded
    │   ├── UnsupportedContent       400 invalid_request_error / unsupported_content
    │   ├── InvalidAudio             400 invalid_request_error / invalid_audio
    │   └── InvalidImage             400 invalid_request_error / invalid_image
    ├── PayloadTooLarge              413 invalid_request_error / payload_too_large
    ├── Unauthenticated              401 invalid_request_error / invalid_api_key
    ├── PermissionDenied             403 permission_error / insufficient_scope
    ├── RateLimited                  429 rate_limit_error / rate_limit_exceeded (+ Retry-After headers)
    ├── ModelNotFound                404 invalid_request_error / model_not_found
    ├── NotFound                     404 invalid_request_error / not_found
    ├── AssetError                   500 server_error / asset_unavailable
    │   ├── AssetMissing             a package that carries a model is not installed
    │   └── ChecksumMismatch         an assembled file does not match the catalogue
    ├── ConfigError                  500 server_error / invalid_config
    ├── ServerBusy                   503 server_error / server_busy (+ Retry-After header)
    └── EngineError                  502 server_error / engine_error
        └── EngineUnavailable        503 server_error / engine_unavailable

Each class carries its HTTP status, OpenAI `type` and `code`, optionally the offending `param`, and any
response `headers` (Retry-After, x-ratelimit-*).
Model mistakes are not exceptions; these are for requests we refuse and for faults we cannot recover from.
"""

from __future__ import annotations

SHOWN_CHARS = 80


def shown(value: str) -> str:
    """`value` quoted for an error message, cut short: a caller's 5 MB model name is not echoed back."""
    return repr(value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "…")


class EmberError(Exception):
    """Base of every error Ember raises on purpose."""

    status = 500
    type = "server_error"
    code: str | None = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}


class InvalidRequest(EmberError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_value"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"

    def __init__(self, message: str, *, param: str | None = "messages") -> None:
        super().__init__(message, param=param)


class UnsupportedContent(InvalidRequest):
    code = "unsupported_content"


class InvalidAudio(InvalidRequest):
    code = "invalid_audio"


class InvalidImage(InvalidRequest):
    """An image part that cannot be used: too big, not an image, a format we do not read, or a URL we do not fetch."""

    code = "invalid_image"


class PayloadTooLarge(EmberError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class Unauthenticated(EmberError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(EmberError):
    status = 403
    type = "permission_error"
    code = "insufficient_scope"


class RateLimited(EmberError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class ModelNotFound(EmberError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class NotFound(EmberError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class AssetError(EmberError):
    code = "asset_unavailable"


class AssetMissing(AssetError):
    pass


class ChecksumMismatch(AssetError):
    pass


class ConfigError(EmberError):
    code = "invalid_config"


class ServerBusy(EmberError):
    """The server's admission limit is full: as many generations running and waiting as it allows."""

    status = 503
    code = "server_busy"


class EngineError(EmberError):
    status = 502
    code = "engine_error"


class EngineUnavailable(EngineError):
    status = 503
    code = "engine_unavailable"
