"""verify_webhook against a real hub's online/offline calls (``herald serve --webhook-url``)."""

from __future__ import annotations

import hashlib
import hmac
import queue
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

import pytest

from herald_client import (
    WEBHOOK_SIGNATURE_HEADER,
    Webhook,
    WebhookVerificationError,
    mint_token,
    verify_webhook,
)

from .conftest import SECRET, Script, ScriptedServer, Stream, running_hub

WEBHOOK_SECRET = "python-webhook-secret"


def test_verifies_the_hubs_online_and_offline_calls(
    scripted: Callable[[Script], ScriptedServer],
) -> None:
    calls: queue.Queue[tuple[bytes, str | None]] = queue.Queue()

    def receive(handler: BaseHTTPRequestHandler, body: bytes, _index: int) -> None:
        calls.put((body, handler.headers.get(WEBHOOK_SIGNATURE_HEADER)))
        handler.send_response(204)
        handler.end_headers()

    receiver = scripted(receive)
    args = ("--webhook-url", f"{receiver.url}/hooks/herald", "--webhook-secret", WEBHOOK_SECRET)
    with running_hub(*args, "--offline-delay", "200ms") as hub:
        before_ms = time.time() * 1000
        stream = Stream(hub.url, mint_token(SECRET, "py-webhook-user", ttl=60), [])
        body, signature = calls.get(timeout=10)
        online = verify_webhook(body, signature, WEBHOOK_SECRET)
        assert online.type == "user.online"
        assert online.user == "py-webhook-user"
        assert online.at >= before_ms - 1000
        stream.close()
        offline = verify_webhook(*calls.get(timeout=10), WEBHOOK_SECRET)
        assert offline == Webhook("user.offline", "py-webhook-user", offline.at)
        assert offline.at >= online.at

    # The same call altered in any way, or checked under another secret, does not verify.
    tampered = body.replace(b"py-webhook-user", b"someone-else")
    with pytest.raises(WebhookVerificationError):
        verify_webhook(tampered, signature, WEBHOOK_SECRET)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, signature, "another-secret")
    with pytest.raises(WebhookVerificationError, match="missing Herald-Signature"):
        verify_webhook(body, None, WEBHOOK_SECRET)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, "sha256=00", WEBHOOK_SECRET)


def test_refuses_a_signed_body_that_is_not_a_webhook() -> None:
    body = b'{"type":"user.deleted","user":"u","at":1}'
    signature = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    with pytest.raises(WebhookVerificationError, match="not \\{type, user, at\\}"):
        verify_webhook(body, signature, WEBHOOK_SECRET)
    with pytest.raises(TypeError):
        verify_webhook(body, signature, "")
