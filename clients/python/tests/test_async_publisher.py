"""AsyncPublisher: the same cases as test_publisher.py, awaited."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

import pytest

from herald_client import PUBLISH_USERS, AsyncPublisher, HeraldError, mint_token

from .conftest import (
    PUBLISH_KEY,
    SECRET,
    Hub,
    ResettingServer,
    Script,
    ScriptedServer,
    Stream,
    answer_json,
    closed_port,
    forward_to_hub,
)

pytestmark = pytest.mark.anyio

UserStream = Callable[..., tuple[str, Stream]]
Scripted = Callable[[Script], ScriptedServer]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def publisher(url: str, key: str = PUBLISH_KEY, **options: object) -> AsyncPublisher:
    return AsyncPublisher(url, key, **options)  # type: ignore[arg-type]


async def test_send_to_user_reaches_that_user_only(hub: Hub, user_stream: UserStream) -> None:
    alice, alice_stream = user_stream()
    _, bob_stream = user_stream()
    async with AsyncPublisher(hub.url, PUBLISH_KEY) as herald:
        event_id = await herald.send_to_user(alice, "payment_completed", {"amount": 5000})
        marker = await herald.broadcast("note", "marker")
    assert json.loads(alice_stream.by_id("payment_completed", event_id).data) == {"amount": 5000}
    bob_stream.by_id("note", marker)
    assert all(e.id != event_id for e in bob_stream.events)


async def test_send_to_users_reaches_every_listed_user(hub: Hub, user_stream: UserStream) -> None:
    a, a_stream = user_stream()
    b, b_stream = user_stream()
    async with AsyncPublisher(hub.url, PUBLISH_KEY) as herald:
        event_id = await herald.send_to_users([a, b], "notification", {"message": "hi"})
    for stream in (a_stream, b_stream):
        assert json.loads(stream.by_id("notification", event_id).data) == {"message": "hi"}


async def test_to_topic_and_string_data_verbatim(hub: Hub, user_stream: UserStream) -> None:
    _, stream = user_stream(["orders/42"])
    async with AsyncPublisher(hub.url, PUBLISH_KEY) as herald:
        event_id = await herald.to_topic("orders/42", "note", "line one\nline two")
    assert stream.by_id("note", event_id).data == "line one\nline two"


async def test_broadcast_reaches_every_stream(hub: Hub, user_stream: UserStream) -> None:
    _, a = user_stream()
    _, b = user_stream(["orders/1"])
    async with AsyncPublisher(hub.url, PUBLISH_KEY) as herald:
        event_id = await herald.broadcast("notification", {"message": "maintenance"})
    a.by_id("notification", event_id)
    b.by_id("notification", event_id)


async def test_publish_batch_returns_ids_in_order(hub: Hub, user_stream: UserStream) -> None:
    user, stream = user_stream(["orders/7"])
    async with AsyncPublisher(hub.url, PUBLISH_KEY) as herald:
        ids = await herald.publish_batch(
            [
                {"user": user, "event": "order_update", "data": {"status": "paid"}},
                {"topic": "orders/7", "event": "order_update", "data": {"status": "shipped"}},
                {"users": [user], "topics": ["orders/7"], "event": "note", "data": "once"},
            ]
        )
        assert await herald.publish_batch([]) == []
    stream.by_id("note", ids[2])
    got = [e for e in stream.events if e.id in ids]
    assert [e.id for e in got] == ids
    assert [e.data for e in got] == ['{"status":"paid"}', '{"status":"shipped"}', "once"]


async def test_publisher_token_within_and_outside_its_claim(
    hub: Hub, user_stream: UserStream
) -> None:
    user, stream = user_stream()
    token = mint_token(SECRET, None, publish=[PUBLISH_USERS], ttl=60)
    async with AsyncPublisher(hub.url, token) as herald:
        stream.by_id("note", await herald.send_to_user(user, "note", "from a publisher token"))
        with pytest.raises(HeraldError) as refused:
            await herald.broadcast("note", "not allowed")
    assert (refused.value.status, refused.value.code, refused.value.attempts) == (
        403,
        "forbidden",
        1,
    )


async def test_wrong_key_is_401_and_not_retried(hub: Hub) -> None:
    async with AsyncPublisher(hub.url, "not-the-key") as herald:
        with pytest.raises(HeraldError) as refused:
            await herald.broadcast("note", "x")
    error = refused.value
    assert (error.status, error.code, error.attempts) == (401, "unauthorized", 1)
    assert error.message == "invalid publish key or publisher token"


async def test_bad_field_is_400_sent_once(hub: Hub, scripted: Scripted) -> None:
    front = scripted(lambda handler, body, _index: forward_to_hub(hub.url, handler, body))
    async with publisher(front.url, initial_delay=0.001) as herald:
        with pytest.raises(HeraldError) as bad:
            await herald.broadcast("herald.reserved", {})
    assert (bad.value.status, bad.value.code) == (400, "bad_request")
    assert len(front.requests) == 1


async def test_503_with_retry_after_is_retried_after_that_delay(
    hub: Hub, user_stream: UserStream, scripted: Scripted
) -> None:
    user, stream = user_stream()

    def script(handler: BaseHTTPRequestHandler, body: bytes, index: int) -> None:
        if index == 0:
            error = {"error": "unavailable", "message": "broker down"}
            answer_json(handler, 503, error, {"Retry-After": "1"})
        else:
            forward_to_hub(hub.url, handler, body)

    front = scripted(script)
    async with publisher(front.url, initial_delay=0.05) as herald:
        event_id = await herald.send_to_user(
            user, "payment_completed", {"amount": 1}, idempotency_key="p1"
        )
    stream.by_id("payment_completed", event_id)
    first, second = front.requests
    assert 1.0 <= second.at - first.at < 1.0 + 0.05 + 0.5
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == "p1"


async def test_429_retries_then_raises_the_hub_error(scripted: Scripted) -> None:
    front = scripted(
        lambda handler, _body, _index: answer_json(
            handler, 429, {"error": "too_many_requests", "message": "over"}, {"Retry-After": "0"}
        )
    )
    async with publisher(front.url, retries=2, initial_delay=0.001) as herald:
        with pytest.raises(HeraldError) as refused:
            await herald.broadcast("note", "x")
    assert len(front.requests) == 3
    assert (refused.value.status, refused.value.attempts) == (429, 3)


async def test_retry_after_longer_than_max_delay_is_not_waited(scripted: Scripted) -> None:
    front = scripted(
        lambda handler, _body, _index: answer_json(
            handler, 503, {"error": "unavailable", "message": "later"}, {"Retry-After": "120"}
        )
    )
    started = time.monotonic()
    async with publisher(front.url, max_delay=5) as herald:
        with pytest.raises(HeraldError) as refused:
            await herald.broadcast("note", "x")
    assert time.monotonic() - started < 1
    assert (len(front.requests), refused.value.retry_after) == (1, 120.0)


async def test_unreachable_hub_fails_after_bounded_retries() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    async with publisher(url, retries=2, initial_delay=0.04, rand=lambda: 1.0) as herald:
        with pytest.raises(HeraldError) as failed:
            await herald.broadcast("note", "x")
    assert (failed.value.code, failed.value.status, failed.value.attempts) == ("network", None, 3)
    assert 0.115 <= time.monotonic() - started < 3


async def test_broken_connections_are_retried(resetting: ResettingServer) -> None:
    async with publisher(resetting.url, retries=3, initial_delay=0.005) as herald:
        with pytest.raises(HeraldError) as failed:
            await herald.broadcast("note", "x")
    assert (failed.value.code, failed.value.attempts) == ("network", 4)
    assert resetting.connections == 4


async def test_silent_hub_times_out(silent: str) -> None:
    started = time.monotonic()
    async with publisher(silent, retries=0, timeout=0.3) as herald:
        with pytest.raises(HeraldError) as failed:
            await herald.broadcast("note", "x")
    assert failed.value.code == "timeout"
    assert 0.29 <= time.monotonic() - started < 2
