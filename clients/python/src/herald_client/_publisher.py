from __future__ import annotations

import email.utils
import json
import random
import re
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Callable, TypedDict
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx

from ._errors import HeraldError

__all__ = ["AsyncPublisher", "PublishItem", "Publisher", "backoff_delay", "parse_retry_after"]

_USER_AGENT = "herald-client-python/0.1.0"
# The hub's limit on Idempotency-Key; visible ASCII keeps the header valid everywhere.
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")


class _PublishItemRequired(TypedDict):
    data: object


class PublishItem(_PublishItemRequired, total=False):
    """One item of ``POST /publish``. No users and no topics is a broadcast."""

    event: str
    user: str
    users: Sequence[str]
    topic: str
    #: Concrete topics (no ``*``/``**`` wildcards).
    topics: Sequence[str]
    #: Reconnection delay, in milliseconds, that clients should use from this event on.
    retry: int


class _Policy:
    """What the sync and async publishers share: the request, the answer, the retry policy."""

    def __init__(
        self,
        url: str,
        key: str,
        retries: int,
        initial_delay: float,
        max_delay: float,
        rand: Callable[[], float],
    ) -> None:
        if not key:
            raise ValueError("key is required")
        for name, value in (
            ("retries", retries),
            ("initial_delay", initial_delay),
            ("max_delay", max_delay),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0")
        self.endpoint = _publish_endpoint(url)
        self.key = key
        self.retries = retries
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.random = rand

    def request(self, body: object, idempotency_key: str | None) -> tuple[bytes, dict[str, str]]:
        headers = {
            "Authorization": f"Bearer {self.key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        if idempotency_key is not None:
            if not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
                raise ValueError("idempotency_key must be 1-128 visible ASCII characters")
            headers["Idempotency-Key"] = idempotency_key
        # Compact, and UTF-8 as is: the hub sends non-string data on exactly as given.
        encoded = json.dumps(
            body, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
        return encoded, headers

    def answer(self, response: httpx.Response, attempt: int) -> object:
        """The parsed body of a 200, or the hub's error as a HeraldError."""
        if response.status_code == 200:
            try:
                parsed: object = response.json()
            except ValueError:
                raise HeraldError(
                    "invalid_response",
                    "the hub answered 200 with a body that is not JSON",
                    status=200,
                    attempts=attempt,
                ) from None
            return parsed
        raise _hub_error(response, attempt)

    def transport_error(self, error: httpx.TransportError, attempt: int) -> HeraldError:
        if isinstance(error, httpx.TimeoutException):
            return HeraldError(
                "timeout", f"no answer from {self.endpoint}: {error!r}", attempts=attempt
            )
        return HeraldError("network", f"cannot reach {self.endpoint}: {error!r}", attempts=attempt)

    def delay(self, error: HeraldError) -> float | None:
        """Seconds to wait before retrying after ``error``, or None to give up."""
        if not error.retryable or error.attempts > self.retries:
            return None
        if error.retry_after is not None:
            if error.retry_after > self.max_delay:
                return None  # longer than we wait: the caller decides (error.retry_after)
            # At least what the hub asked, plus jitter so publishers refused together spread.
            return error.retry_after + self.random() * self.initial_delay
        return backoff_delay(error.attempts - 1, self.initial_delay, self.max_delay, self.random)


def backoff_delay(
    attempt: int,
    initial_delay: float,
    max_delay: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Exponential backoff with equal jitter: half of ``min(max, initial * 2**attempt)`` fixed,
    half random. The random half spreads publishers that failed together; the fixed half keeps
    a few bounded retries from all firing at once against a hub that is restarting."""
    ceiling = min(max_delay, initial_delay * 2.0 ** max(0, attempt))
    return ceiling / 2 + rand() * ceiling / 2


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _hub_error(response: httpx.Response, attempt: int) -> HeraldError:
    code = "http_error"
    message = response.text.strip() or f"{response.status_code} {response.reason_phrase}"
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        if isinstance(parsed.get("error"), str):
            code = parsed["error"]
        if isinstance(parsed.get("message"), str):
            message = parsed["message"]
    return HeraldError(
        code,
        message,
        status=response.status_code,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        attempts=attempt,
    )


def _check_users(users: Sequence[str]) -> None:
    # A bare string is a Sequence[str] too, and would become a list of one-letter users.
    if isinstance(users, str):
        raise TypeError("users must be a list of user ids, not a string")


def _single_id(answer: object) -> str:
    if isinstance(answer, dict) and isinstance(answer.get("id"), str):
        return str(answer["id"])
    raise _invalid_answer(answer)


def _batch_ids(answer: object, count: int) -> list[str]:
    ids = answer.get("ids") if isinstance(answer, dict) else None
    if isinstance(ids, list) and len(ids) == count and all(isinstance(i, str) for i in ids):
        return [str(i) for i in ids]
    raise _invalid_answer(answer)


def _invalid_answer(answer: object) -> HeraldError:
    return HeraldError(
        "invalid_response", f"unexpected answer from the hub: {answer!r:.200}", status=200
    )


def _publish_endpoint(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"url {url!r} is not an absolute http(s) URL")
    path = parts.path
    if not path.endswith("/publish"):
        path = path.rstrip("/") + "/publish"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class Publisher:
    """Publishes events to a Herald hub over ``POST /publish``.

    ::

        with Publisher("http://127.0.0.1:8080", key) as herald:
            herald.send_to_user("user_123", "payment_completed", {"amount": 5000})
            herald.broadcast("maintenance", {"at": "22:00"})

    Every method returns the id(s) the hub assigned and raises :class:`HeraldError`. 429, 503,
    network errors and timeouts are retried (``retries``, default 3) with exponential backoff
    and jitter, waiting at least the hub's ``Retry-After``. ``timeout`` (seconds) bounds
    connecting and each read and write of one attempt. Pass ``client`` to reuse your own
    ``httpx.Client`` (it is then yours to close).
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        retries: int = 3,
        timeout: float = 10.0,
        initial_delay: float = 0.25,
        max_delay: float = 30.0,
        client: httpx.Client | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._policy = _Policy(url, key, retries, initial_delay, max_delay, rand)
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout)
        self._timeout = timeout

    def send_to_user(
        self, user: str, event: str, data: object, *, idempotency_key: str | None = None
    ) -> str:
        """Sends an event to every stream of one user (all their tabs and devices)."""
        return self.publish(
            {"event": event, "data": data, "user": user}, idempotency_key=idempotency_key
        )

    def send_to_users(
        self,
        users: Sequence[str],
        event: str,
        data: object,
        *,
        idempotency_key: str | None = None,
    ) -> str:
        """Sends one event to several users (one id; each stream receives it once)."""
        _check_users(users)
        return self.publish(
            {"event": event, "data": data, "users": list(users)}, idempotency_key=idempotency_key
        )

    def to_topic(
        self, topic: str, event: str, data: object, *, idempotency_key: str | None = None
    ) -> str:
        """Sends an event to the subscribers of a concrete topic such as ``orders/42``."""
        return self.publish(
            {"event": event, "data": data, "topic": topic}, idempotency_key=idempotency_key
        )

    def broadcast(self, event: str, data: object, *, idempotency_key: str | None = None) -> str:
        """Sends an event to every stream."""
        return self.publish({"event": event, "data": data}, idempotency_key=idempotency_key)

    def publish(self, item: PublishItem, *, idempotency_key: str | None = None) -> str:
        """Publishes one item with any targets (users and topics together, a ``retry`` hint)."""
        return _single_id(self._post(item, idempotency_key))

    def publish_batch(
        self, items: Sequence[PublishItem], *, idempotency_key: str | None = None
    ) -> list[str]:
        """Publishes several items in one request, all or nothing; returns their ids in order.
        An empty list returns ``[]`` without a request."""
        if not items:
            return []
        return _batch_ids(self._post(list(items), idempotency_key), len(items))

    def _post(self, body: object, idempotency_key: str | None) -> object:
        content, headers = self._policy.request(body, idempotency_key)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._client.post(
                    self._policy.endpoint, content=content, headers=headers, timeout=self._timeout
                )
                return self._policy.answer(response, attempt)
            except httpx.TransportError as transport:
                error = self._policy.transport_error(transport, attempt)
                cause: BaseException = transport
            except HeraldError as refused:
                error, cause = refused, refused
            wait = self._policy.delay(error)
            if wait is None:
                raise error from (None if cause is error else cause)
            time.sleep(wait)

    def close(self) -> None:
        """Closes the HTTP client (unless it was passed in)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncPublisher:
    """:class:`Publisher` for asyncio (or trio, through anyio), used as an async context manager::

    async with AsyncPublisher("http://127.0.0.1:8080", key) as herald:
        await herald.send_to_user("user_123", "payment_completed", {"amount": 5000})
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        retries: int = 3,
        timeout: float = 10.0,
        initial_delay: float = 0.25,
        max_delay: float = 30.0,
        client: httpx.AsyncClient | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._policy = _Policy(url, key, retries, initial_delay, max_delay, rand)
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout)
        self._timeout = timeout

    async def send_to_user(
        self, user: str, event: str, data: object, *, idempotency_key: str | None = None
    ) -> str:
        """Sends an event to every stream of one user (all their tabs and devices)."""
        return await self.publish(
            {"event": event, "data": data, "user": user}, idempotency_key=idempotency_key
        )

    async def send_to_users(
        self,
        users: Sequence[str],
        event: str,
        data: object,
        *,
        idempotency_key: str | None = None,
    ) -> str:
        """Sends one event to several users (one id; each stream receives it once)."""
        _check_users(users)
        return await self.publish(
            {"event": event, "data": data, "users": list(users)}, idempotency_key=idempotency_key
        )

    async def to_topic(
        self, topic: str, event: str, data: object, *, idempotency_key: str | None = None
    ) -> str:
        """Sends an event to the subscribers of a concrete topic such as ``orders/42``."""
        return await self.publish(
            {"event": event, "data": data, "topic": topic}, idempotency_key=idempotency_key
        )

    async def broadcast(
        self, event: str, data: object, *, idempotency_key: str | None = None
    ) -> str:
        """Sends an event to every stream."""
        return await self.publish({"event": event, "data": data}, idempotency_key=idempotency_key)

    async def publish(self, item: PublishItem, *, idempotency_key: str | None = None) -> str:
        """Publishes one item with any targets (users and topics together, a ``retry`` hint)."""
        return _single_id(await self._post(item, idempotency_key))

    async def publish_batch(
        self, items: Sequence[PublishItem], *, idempotency_key: str | None = None
    ) -> list[str]:
        """Publishes several items in one request, all or nothing; returns their ids in order.
        An empty list returns ``[]`` without a request."""
        if not items:
            return []
        return _batch_ids(await self._post(list(items), idempotency_key), len(items))

    async def _post(self, body: object, idempotency_key: str | None) -> object:
        content, headers = self._policy.request(body, idempotency_key)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._client.post(
                    self._policy.endpoint, content=content, headers=headers, timeout=self._timeout
                )
                return self._policy.answer(response, attempt)
            except httpx.TransportError as transport:
                error = self._policy.transport_error(transport, attempt)
                cause: BaseException = transport
            except HeraldError as refused:
                error, cause = refused, refused
            wait = self._policy.delay(error)
            if wait is None:
                raise error from (None if cause is error else cause)
            await anyio.sleep(wait)

    async def aclose(self) -> None:
        """Closes the HTTP client (unless it was passed in)."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> AsyncPublisher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
