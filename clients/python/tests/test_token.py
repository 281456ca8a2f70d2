"""mint_token against a real hub: its tokens open streams for their ``sub`` and topics only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable

import pytest

from herald_client import PUBLISH_BROADCAST, Publisher, mint_token

from .conftest import PUBLISH_KEY, SECRET, Hub, Stream, StreamRefusedError

OpenStream = Callable[..., Stream]


def segment(part: str) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def test_claims_and_signature() -> None:
    token = mint_token(
        SECRET, "u1", topics=["orders/*"], ttl=90, publish=[PUBLISH_BROADCAST], now=1_900_000_000.7
    )
    head, payload, signature = token.split(".")
    assert segment(head) == {"alg": "HS256", "typ": "JWT"}
    assert segment(payload) == {
        "sub": "u1",
        "iat": 1_900_000_000,
        "exp": 1_900_000_090,
        "topics": ["orders/*"],
        "publish": ["@broadcast"],
    }
    expected = hmac.new(SECRET.encode(), f"{head}.{payload}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected
    assert "=" not in token


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        mint_token("", "u1")
    with pytest.raises(ValueError):
        mint_token(SECRET, None)
    with pytest.raises(ValueError):
        mint_token(SECRET, "u1", ttl=0)
    with pytest.raises(TypeError):
        mint_token(SECRET, "u1", topics="orders/*")


def test_token_opens_a_stream_for_its_sub_and_topics(hub: Hub, open_stream: OpenStream) -> None:
    stream = open_stream(mint_token(SECRET, "py-token-user", topics=["orders/*"]), ["orders/9"])
    with Publisher(hub.url, PUBLISH_KEY) as herald:
        to_user = herald.send_to_user("py-token-user", "hello", {"n": 1})
        to_topic = herald.to_topic("orders/9", "order_update", {"orderId": "9"})
    stream.by_id("hello", to_user)
    stream.by_id("order_update", to_topic)


def test_foreign_topic_is_403_and_foreign_secret_401(open_stream: OpenStream) -> None:
    with pytest.raises(StreamRefusedError) as forbidden:
        open_stream(mint_token(SECRET, "u2", topics=["orders/*"]), ["billing/1"])
    assert forbidden.value.status == 403
    with pytest.raises(StreamRefusedError) as unauthorized:
        open_stream(mint_token("another-secret", "u2"))
    assert unauthorized.value.status == 401
