"""Domain errors. Services raise these; the web layer maps them to HTTP once."""


class DomainError(Exception):
    """Base class: `message` is safe to show to the user."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(DomainError):
    status = 400


class Unauthorized(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class PayloadTooLarge(DomainError):
    status = 413


class Unprocessable(DomainError):
    status = 422


class RateLimited(DomainError):
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(DomainError):
    status = 503


class BadGateway(DomainError):
    """The project's side did not answer properly."""

    status = 502


class GatewayTimeout(DomainError):
    status = 504


class InsufficientStorage(DomainError):
    """The project is at or over its disk quota."""

    status = 507
