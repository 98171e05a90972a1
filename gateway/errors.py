"""Domain failures raised by resolvers and mapped in one place to GraphQL codes and HTTP statuses."""

from __future__ import annotations


class DomainError(Exception):
    """An expected failure, shown to the caller with a stable code and a human message."""

    code = "BAD_REQUEST"
    status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationFailed(DomainError):
    code = "VALIDATION_FAILED"
    status = 400


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"
    status = 401


class Forbidden(DomainError):
    code = "FORBIDDEN"
    status = 403


class NotFound(DomainError):
    code = "NOT_FOUND"
    status = 404


class Conflict(DomainError):
    code = "CONFLICT"
    status = 409


class SeatsExhausted(Conflict):
    """Every seat of the organization's plan is taken (a member cannot join)."""

    code = "SEATS_EXHAUSTED"


class Unprocessable(DomainError):
    code = "UNPROCESSABLE"
    status = 422


class RateLimited(DomainError):
    code = "RATE_LIMITED"
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceBusy(DomainError):
    """The request cannot be served now (no database connection became free in time): retry."""

    code = "SERVICE_UNAVAILABLE"
    status = 503
    retry_after = 1


class DatabaseUnavailable(ServiceBusy):
    """The database cannot be reached (refused, cut, timed out, shutting down): retry.

    Raised in place of the driver's connection-level errors by the database layer
    (`gateway.db.outage.unavailable`), so both protocols map it like any `ServiceBusy`."""

    def __init__(self, message: str = "The database is unavailable; retry later") -> None:
        super().__init__(message)


class NotImplementedYet(DomainError):
    code = "NOT_IMPLEMENTED"
    status = 501


class ConfigurationError(ValueError):
    """A setting's value that cannot be used as it is (a file it names missing or malformed),
    found when the service is built: the command line prints it as one line and exits."""
