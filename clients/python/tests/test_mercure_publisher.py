"""A Mercure publisher library from PyPI (``mercure-publisher``) against ``herald serve --mercure``,
on one node and on two nodes sharing a private ``redis-server``.

The library mints its own publisher JWT (``{"mercure": {"publish": [...]}, "exp": ...}``) from
the hub's key and POSTs form bodies to ``/.well-known/mercure``; plain SSE streams of the
Mercure endpoint (anonymous or with a subscriber token) must get exactly the id, data and
type it sent. Negatives are proven by a later update the stream does select (a stream
delivers in order), never by waiting.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Iterator

import pytest
from mercure_publisher import (
    AsyncMercurePublisher,
    MercureConfig,
    MercurePublisher,
    MercurePublishError,
)

from herald_client import mint_token
from herald_client._token import _b64url, _b64url_json

from .conftest import SECRET, Hub, Stream, running_hub, running_redis

# PyJWT (under mercure-publisher) warns of HMAC keys under 32 bytes; these are test keys.
pytestmark = pytest.mark.filterwarnings("ignore:The HMAC key is")

MERCURE = "/.well-known/mercure"
MULTILINE = "line one\n\nline three\n  indented"
_serial = iter(range(1_000_000))


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_serial)}"


@pytest.fixture(scope="module")
def mercure_hub() -> Iterator[Hub]:
    with running_hub("--mercure", "--allow-anonymous") as started:
        yield started


@pytest.fixture
def subscribe(mercure_hub: Hub) -> Iterator[Callable[..., Stream]]:
    """Opens ``GET /.well-known/mercure?<query>`` streams; closed after the test."""
    streams: list[Stream] = []

    def open_(query: list[tuple[str, str]]) -> Stream:
        stream = Stream(mercure_hub.url, None, [], path=MERCURE, query=query)
        streams.append(stream)
        return stream

    yield open_
    for stream in streams:
        stream.close()


Subscribe = Callable[..., Stream]


def config(hub: Hub, publish_topics: list[str] | None = None) -> MercureConfig:
    return MercureConfig(
        hub_url=f"{hub.url}{MERCURE}",
        publisher_jwt_key=SECRET,
        publish_topics=publish_topics or ["*"],
    )


def updates_until(stream: Stream, event_id: str) -> list[tuple[str, str, str]]:
    """(type, id, data) of every event with data, once the one with ``event_id`` arrived."""
    stream.next(lambda e: e.id == event_id)
    return [(e.type, e.id, e.data) for e in stream.events]


def test_an_update_arrives_with_exactly_its_id_data_and_type(
    mercure_hub: Hub, subscribe: Subscribe
) -> None:
    book = unique("book")
    canonical = f"https://example.com/books/{book}"
    alternate = f"https://example.com/alternates/{book}"
    by_topic = subscribe([("topic", canonical)])
    by_template = subscribe([("topic", "https://example.com/books/{id}")])
    by_alternate = subscribe([("match_urlpattern", "https://example.com/alternates/:id")])
    event_id = f"https://example.com/events/{book}"
    with MercurePublisher(config(mercure_hub)) as publisher:
        answered = publisher.publish(
            [canonical, alternate], MULTILINE, id=event_id, type="book.updated", retry=2500
        )
    assert answered == event_id
    for stream in (by_topic, by_template, by_alternate):
        assert updates_until(stream, event_id) == [("book.updated", event_id, MULTILINE)]


def test_generated_ids_and_json_payloads_match_what_the_library_was_told(
    mercure_hub: Hub, subscribe: Subscribe
) -> None:
    topic = f"https://example.com/books/{unique('json')}"
    stream = subscribe([("match", topic)])
    payload = {"title": "Dune", "lines": "one\ntwo", "price": 9.5}
    with MercurePublisher(config(mercure_hub)) as publisher:
        generated = publisher.publish(topic, payload)
    assert generated.startswith("urn:uuid:") and len(generated) == 45, generated
    assert updates_until(stream, generated) == [("message", generated, json.dumps(payload))]


def test_private_updates_reach_only_subscribers_whose_token_allows_them(
    mercure_hub: Hub, subscribe: Subscribe
) -> None:
    topic = f"https://example.com/books/{unique('private')}"
    subscriber = _hs256({"mercure": {"subscribe": ["https://example.com/books/{id}"]}})
    other_topics = _hs256({"mercure": {"subscribe": ["https://example.com/authors/{id}"]}})
    herald_token = mint_token(SECRET, "mercure-reader", ttl=600)  # valid, with no Mercure grant
    with_grant = subscribe([("topic", topic), ("authorization", subscriber)])
    other_grant = subscribe([("topic", topic), ("authorization", other_topics)])
    herald_only = subscribe([("topic", topic), ("authorization", herald_token)])
    anonymous = subscribe([("topic", topic)])
    secret_id, marker_id = unique("urn:secret"), unique("urn:marker")
    with MercurePublisher(config(mercure_hub)) as publisher:
        publisher.publish(topic, MULTILINE, private=True, id=secret_id)
        publisher.publish(topic, "public marker", id=marker_id)
    assert updates_until(with_grant, marker_id) == [
        ("message", secret_id, MULTILINE),
        ("message", marker_id, "public marker"),
    ]
    for stream in (other_grant, herald_only, anonymous):
        assert updates_until(stream, marker_id) == [("message", marker_id, "public marker")]


def test_the_async_publisher_delivers_in_order(mercure_hub: Hub, subscribe: Subscribe) -> None:
    topic = f"https://example.com/books/{unique('async')}"
    stream = subscribe([("topic", topic)])
    ids = [unique("urn:async") for _ in range(5)]

    async def publish_all() -> list[str]:
        async with AsyncMercurePublisher(config(mercure_hub)) as publisher:
            return [
                await publisher.publish(topic, f"{MULTILINE} #{n}", id=i) for n, i in enumerate(ids)
            ]

    assert asyncio.run(publish_all()) == ids
    assert updates_until(stream, ids[-1]) == [
        ("message", i, f"{MULTILINE} #{n}") for n, i in enumerate(ids)
    ]


def test_the_hub_holds_the_library_token_to_its_publish_topics(
    mercure_hub: Hub, subscribe: Subscribe
) -> None:
    book = unique("scoped")
    stream = subscribe([("topic", "*")])
    books_only = config(mercure_hub, ["https://example.com/books/{id}"])
    with MercurePublisher(books_only) as publisher:
        with pytest.raises(MercurePublishError) as refused:
            publisher.publish(f"https://example.com/authors/{book}", "not allowed")
        assert refused.value.status_code == 403
        # Every topic of an update must be allowed, alternates too.
        with pytest.raises(MercurePublishError) as refused:
            publisher.publish(
                [f"https://example.com/books/{book}", f"https://example.com/authors/{book}"], "x"
            )
        assert refused.value.status_code == 403
        marker = publisher.publish(
            f"https://example.com/books/{book}", "allowed", id=unique("urn:ok")
        )
    assert updates_until(stream, marker) == [("message", marker, "allowed")]
    wrong_key = MercureConfig(
        hub_url=f"{mercure_hub.url}{MERCURE}",
        publisher_jwt_key="not-the-hub-key",
        publish_topics=["*"],
    )
    with MercurePublisher(wrong_key) as publisher, pytest.raises(MercurePublishError) as refused:
        publisher.publish(f"https://example.com/books/{book}", "forged")
    assert refused.value.status_code == 401


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[tuple[Hub, Hub]]:
    """Two ``--mercure`` hubs sharing one private ``redis-server``."""
    with running_redis() as redis_url:
        args = ("--mercure", "--allow-anonymous", "--redis", redis_url)
        with running_hub(*args) as first, running_hub(*args) as second:
            yield first, second


def test_on_two_nodes_the_library_publishes_to_one_and_subscribers_of_the_other_get_it(
    two_nodes: tuple[Hub, Hub],
) -> None:
    streaming, publishing = two_nodes
    topic = f"https://example.com/books/{unique('redis')}"
    reader = _hs256({"mercure": {"subscribe": [topic]}})
    anonymous = Stream(streaming.url, None, [], path=MERCURE, query=[("topic", topic)])
    allowed = Stream(
        streaming.url, None, [], path=MERCURE, query=[("topic", topic), ("authorization", reader)]
    )
    ids = [unique("urn:redis") for _ in range(3)]
    try:
        with MercurePublisher(config(publishing)) as publisher:
            publisher.publish(topic, MULTILINE, id=ids[0], type="book.updated")
            publisher.publish(topic, "secret", id=ids[1], private=True)
            publisher.publish(topic, "last", id=ids[2])
        assert updates_until(allowed, ids[2]) == [
            ("book.updated", ids[0], MULTILINE),
            ("message", ids[1], "secret"),
            ("message", ids[2], "last"),
        ]
        assert updates_until(anonymous, ids[2]) == [
            ("book.updated", ids[0], MULTILINE),
            ("message", ids[2], "last"),
        ]
        # Resuming on the publishing node from an id it did not deliver itself.
        resumed = Stream(
            publishing.url,
            None,
            [],
            path=MERCURE,
            query=[("topic", topic), ("lastEventID", ids[0])],
        )
        try:
            assert updates_until(resumed, ids[2]) == [("message", ids[2], "last")]
        finally:
            resumed.close()
    finally:
        anonymous.close()
        allowed.close()


def _hs256(claims: dict[str, object]) -> str:
    """A token with exactly these claims (no ``exp``, as Mercure's 0.x tokens often are)."""
    head = f"{_b64url_json({'alg': 'HS256', 'typ': 'JWT'})}.{_b64url_json(claims)}"
    return f"{head}.{_b64url(hmac.new(SECRET.encode(), head.encode(), hashlib.sha256).digest())}"
