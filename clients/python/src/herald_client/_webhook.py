"""Checking the hub's online/offline webhooks (``--webhook-url``, ``--webhook-secret``).

The hub signs each call's raw body: ``Herald-Signature: sha256=<hex HMAC-SHA256(secret, body)>``.
Verify the bytes exactly as they arrived (a re-serialised body has other bytes), compare in
constant time, and only then trust what the body says.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from dataclasses import dataclass

#: The header the hub signs its webhook calls with.
WEBHOOK_SIGNATURE_HEADER = "Herald-Signature"

_TYPES = ("user.online", "user.offline")


class WebhookVerificationError(ValueError):
    """The call was not signed by a hub holding the secret, or its body is not a webhook."""


@dataclass(frozen=True)
class Webhook:
    """What a webhook call tells: a user's first stream opened, or their last one closed."""

    #: ``"user.online"`` or ``"user.offline"``.
    type: str
    #: The user's id (the token's ``sub``).
    user: str
    #: Unix milliseconds of the transition. Calls may arrive out of order: order by ``at``.
    at: int


def verify_webhook(body: bytes | str, signature: str | None, secret: str) -> Webhook:
    """Verifies a webhook call and returns what it says.

    ``body`` is the raw request body and ``signature`` the ``Herald-Signature`` header's value.
    Raises ``WebhookVerificationError`` if the signature is missing or wrong (answer such calls
    ``401``) or the body is not a Herald webhook.
    """
    if not isinstance(secret, str) or not secret:
        raise TypeError("verify_webhook: secret must be a non-empty string")
    if not signature:
        raise WebhookVerificationError("missing Herald-Signature header")
    raw = body.encode() if isinstance(body, str) else bytes(body)
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature.strip().encode(), expected.encode()):
        raise WebhookVerificationError("Herald-Signature does not match the body under this secret")
    try:
        parsed = json.loads(raw)
    except ValueError as error:
        raise WebhookVerificationError("webhook body is not JSON") from error
    if not isinstance(parsed, dict):
        raise WebhookVerificationError("webhook body is not {type, user, at}")
    kind, user, at = parsed.get("type"), parsed.get("user"), parsed.get("at")
    if (
        kind not in _TYPES
        or not isinstance(user, str)
        or isinstance(at, bool)
        or not isinstance(at, (int, float))
        or not math.isfinite(at)
    ):
        raise WebhookVerificationError("webhook body is not {type, user, at}")
    return Webhook(type=str(kind), user=user, at=int(at))
