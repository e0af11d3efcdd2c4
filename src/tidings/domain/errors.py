"""Errors that carry a sentence a person can act on."""


class TidingsError(Exception):
    """Base error. `code` is a stable machine string; the message is for people."""

    code = "error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(TidingsError):
    code = "not_found"
    status = 404


class Forbidden(TidingsError):
    code = "forbidden"
    status = 403


class Unauthorized(TidingsError):
    code = "unauthorized"
    status = 401


class InvalidInput(TidingsError):
    code = "invalid_input"
    status = 422


class Conflict(TidingsError):
    code = "conflict"
    status = 409


class PolicyRefusal(TidingsError):
    """The policy layer refuses a send (window closed, opted out, too long...)."""

    code = "policy_refused"
    status = 422


class SignatureError(TidingsError):
    """A webhook whose signature, token or timestamp does not check out."""

    code = "bad_signature"
    status = 401


class PayloadError(TidingsError):
    """A correctly signed webhook body that cannot be understood."""

    code = "bad_payload"
    status = 400


class RetryLater(Exception):
    """The event cannot be applied yet (e.g. a receipt that overtook its message's send)."""
