"""Publisher against a real ``herald serve``: what it publishes arrives on real SSE streams;
failures carry the hub's status, code and message; retries are bounded and honour Retry-After
(checked with small local HTTP servers in front of the hub)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

import pytest

from herald_client import PUBLISH_USERS, HeraldError, Publisher, mint_token

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

UserStream = Callable[..., tuple[str, Stream]]
Scripted = Callable[[Script], ScriptedServer]


def publisher(url: str, key: str = PUBLISH_KEY, **options: object) -> Publisher:
    return Publisher(url, key, **options)  # type: ignore[arg-type]


def test_send_to_user_reaches_that_user_only(hub: Hub, user_stream: UserStream) -> None:
    alice, alice_stream = user_stream()
    _, bob_stream = user_stream()
    with Publisher(hub.url, PUBLISH_KEY) as herald:
        event_id = herald.send_to_user(alice, "payment_completed", {"amount": 5000})
        assert json.loads(alice_stream.by_id("payment_completed", event_id).data) == {
            "amount": 5000
        }
        # Bob's stream is ordered: once a later broadcast reached him, the user event would have.
        marker = herald.broadcast("note", "marker")
    bob_stream.by_id("note", marker)
    assert all(e.id != event_id for e in bob_stream.events)


def test_send_to_users_reaches_every_listed_user(hub: Hub, user_stream: UserStream) -> None:
    a, a_stream = user_stream()
    b, b_stream = user_stream()
    with Publisher(hub.url, PUBLISH_KEY) as herald:
        event_id = herald.send_to_users([a, b], "notification", {"message": "hi"})
    for stream in (a_stream, b_stream):
        assert json.loads(stream.by_id("notification", event_id).data) == {"message": "hi"}
    with pytest.raises(TypeError):
        herald.send_to_users("not-a-list", "x", 1)


def test_to_topic_and_string_data_verbatim(hub: Hub, user_stream: UserStream) -> None:
    _, stream = user_stream(["orders/42"])
    with Publisher(hub.url, PUBLISH_KEY) as herald:
        event_id = herald.to_topic("orders/42", "note", "line one\nline two")
    assert stream.by_id("note", event_id).data == "line one\nline two"


def test_broadcast_reaches_every_stream(hub: Hub, user_stream: UserStream) -> None:
    _, a = user_stream()
    _, b = user_stream(["orders/1"])
    with Publisher(hub.url, PUBLISH_KEY) as herald:
        event_id = herald.broadcast("notification", {"message": "maintenance at 22:00"})
    a.by_id("notification", event_id)
    b.by_id("notification", event_id)


def test_publish_batch_returns_ids_in_order(hub: Hub, user_stream: UserStream) -> None:
    user, stream = user_stream(["orders/7"])
    with Publisher(hub.url, PUBLISH_KEY) as herald:
        ids = herald.publish_batch(
            [
                {"user": user, "event": "order_update", "data": {"orderId": "7", "status": "paid"}},
                {"topic": "orders/7", "event": "order_update", "data": {"status": "shipped"}},
                {"users": [user], "topics": ["orders/7"], "event": "note", "data": "once"},
            ]
        )
        assert herald.publish_batch([]) == []
    assert len(set(ids)) == 3
    stream.by_id("note", ids[2])
    got = [e for e in stream.events if e.id in ids]
    assert [e.id for e in got] == ids
    assert [e.data for e in got] == [
        '{"orderId":"7","status":"paid"}',
        '{"status":"shipped"}',
        "once",
    ]


def test_publisher_token_within_and_outside_its_claim(hub: Hub, user_stream: UserStream) -> None:
    user, stream = user_stream()
    token = mint_token(SECRET, None, publish=[PUBLISH_USERS], ttl=60)
    with Publisher(hub.url, token) as herald:
        stream.by_id("note", herald.send_to_user(user, "note", "from a publisher token"))
        with pytest.raises(HeraldError) as refused:
            herald.broadcast("note", "not allowed")
    assert refused.value.status == 403
    assert refused.value.code == "forbidden"
    assert "@broadcast" in refused.value.message
    assert refused.value.attempts == 1


def test_wrong_key_is_401_and_not_retried(hub: Hub) -> None:
    with Publisher(hub.url, "not-the-key") as herald, pytest.raises(HeraldError) as refused:
        herald.broadcast("note", "x")
    error = refused.value
    assert (error.status, error.code) == (401, "unauthorized")
    assert error.message == "invalid publish key or publisher token"
    assert not error.retryable
    assert error.attempts == 1
    assert str(error) == "401 unauthorized: invalid publish key or publisher token"


def test_bad_field_is_400_sent_once(hub: Hub, scripted: Scripted) -> None:
    front = scripted(lambda handler, body, _index: forward_to_hub(hub.url, handler, body))
    with publisher(front.url, initial_delay=0.001) as herald, pytest.raises(HeraldError) as bad:
        herald.broadcast("herald.reserved", {})
    assert (bad.value.status, bad.value.code) == (400, "bad_request")
    assert "reserved" in bad.value.message
    assert len(front.requests) == 1


def test_503_with_retry_after_is_retried_after_that_delay(
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
    with publisher(front.url, initial_delay=0.05) as herald:
        event_id = herald.send_to_user(
            user, "payment_completed", {"amount": 1}, idempotency_key="p1"
        )
    stream.by_id("payment_completed", event_id)
    first, second = front.requests
    assert 1.0 <= second.at - first.at < 1.0 + 0.05 + 0.5
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == "p1"
    assert first.body == second.body


def test_429_retries_then_raises_the_hub_error(scripted: Scripted) -> None:
    front = scripted(
        lambda handler, _body, _index: answer_json(
            handler,
            429,
            {"error": "too_many_requests", "message": "over the rate"},
            {"Retry-After": "0"},
        )
    )
    with (
        publisher(front.url, retries=2, initial_delay=0.001) as herald,
        pytest.raises(HeraldError) as refused,
    ):
        herald.broadcast("note", "x")
    assert len(front.requests) == 3
    error = refused.value
    assert (error.status, error.code, error.message) == (429, "too_many_requests", "over the rate")
    assert (error.attempts, error.retry_after) == (3, 0.0)


def test_retry_after_longer_than_max_delay_is_not_waited(scripted: Scripted) -> None:
    front = scripted(
        lambda handler, _body, _index: answer_json(
            handler, 503, {"error": "unavailable", "message": "later"}, {"Retry-After": "120"}
        )
    )
    started = time.monotonic()
    with publisher(front.url, max_delay=5) as herald, pytest.raises(HeraldError) as refused:
        herald.broadcast("note", "x")
    assert time.monotonic() - started < 1
    assert len(front.requests) == 1
    assert (refused.value.status, refused.value.retry_after) == (503, 120.0)


def test_unreachable_hub_fails_after_bounded_retries() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with (
        publisher(url, retries=2, initial_delay=0.04, rand=lambda: 1.0) as herald,
        pytest.raises(HeraldError) as failed,
    ):
        herald.broadcast("note", "x")
    elapsed = time.monotonic() - started
    assert failed.value.code == "network"
    assert failed.value.status is None
    assert failed.value.attempts == 3
    # Backoff waited 0.04 then 0.08 s (rand = 1: the full ceiling) and then gave up.
    assert 0.115 <= elapsed < 3


def test_broken_connections_are_retried(resetting: ResettingServer) -> None:
    with (
        publisher(resetting.url, retries=3, initial_delay=0.005) as herald,
        pytest.raises(HeraldError) as failed,
    ):
        herald.broadcast("note", "x")
    assert failed.value.code == "network"
    assert failed.value.attempts == 4
    assert resetting.connections == 4


def test_silent_hub_times_out(silent: str) -> None:
    started = time.monotonic()
    with publisher(silent, retries=0, timeout=0.3) as herald, pytest.raises(HeraldError) as failed:
        herald.broadcast("note", "x")
    assert failed.value.code == "timeout"
    assert 0.29 <= time.monotonic() - started < 2


def test_bad_arguments_raise_before_any_request() -> None:
    with pytest.raises(ValueError):
        Publisher("127.0.0.1:8080", PUBLISH_KEY)
    with pytest.raises(ValueError):
        Publisher("http://127.0.0.1:1", "")
    with Publisher("http://127.0.0.1:1", PUBLISH_KEY) as herald, pytest.raises(ValueError):
        herald.broadcast("note", "x", idempotency_key="has space")
