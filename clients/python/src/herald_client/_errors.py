from __future__ import annotations

#: Codes the hub answers with (``{"error": code, "message": text}``).
HUB_CODES = (
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "payload_too_large",
    "too_many_requests",
    "unavailable",
)


class HeraldError(Exception):
    """A publishing call failed: the hub's status, error code and message.

    ``code`` is the hub's code (see ``HUB_CODES``) or one raised by the publisher itself:
    ``network`` (the connection failed or broke), ``timeout``, ``invalid_response`` (a 200 whose
    body is not the hub's answer) or ``http_error`` (an error status without the hub's JSON,
    e.g. from a proxy in front of it).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        #: HTTP status of the hub's answer; ``None`` when there was none (network, timeout).
        self.status = status
        #: The hub's ``Retry-After``, in seconds.
        self.retry_after = retry_after
        #: Requests made for this call, retries included.
        self.attempts = attempts

    @property
    def retryable(self) -> bool:
        """Whether the publisher retries this kind of failure: 429, 503, network, timeout."""
        return self.status in (429, 503) or self.code in ("network", "timeout")

    def __str__(self) -> str:
        where = f"{self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"HeraldError(code={self.code!r}, message={self.message!r}, status={self.status!r}, "
            f"retry_after={self.retry_after!r}, attempts={self.attempts!r})"
        )
