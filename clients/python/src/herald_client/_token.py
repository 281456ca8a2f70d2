from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
from collections.abc import Sequence

#: ``publish`` claim entry: the token may publish to any user.
PUBLISH_USERS = "@users"
#: ``publish`` claim entry: the token may broadcast.
PUBLISH_BROADCAST = "@broadcast"


def mint_token(
    secret: str,
    sub: str | None,
    topics: Sequence[str] | None = None,
    ttl: float = 3600,
    publish: Sequence[str] | None = None,
    *,
    now: float | None = None,
) -> str:
    """Signs a JWT for the hub with its ``--jwt-secret`` (HS256).

    ``sub`` is the user whose events the holder's stream receives; ``topics`` the topic
    patterns it may subscribe to (absent: public topics only); ``ttl`` its lifetime in seconds
    (the ``exp`` claim). ``publish`` makes it a publisher token: the topic patterns it may
    publish to, plus ``PUBLISH_USERS`` and ``PUBLISH_BROADCAST``; such a token needs no ``sub``.
    ``now`` (Unix seconds) replaces the clock, for tests.
    """
    if not secret:
        raise ValueError("mint_token: secret is required")
    if sub is None and publish is None:
        raise ValueError("mint_token: sub or publish is required")
    if sub is not None and (not isinstance(sub, str) or sub == ""):
        raise ValueError("mint_token: sub must be a non-empty string")
    if not math.isfinite(ttl) or ttl <= 0:
        raise ValueError("mint_token: ttl must be a number of seconds > 0")
    _check_list("topics", topics)
    _check_list("publish", publish)
    iat = math.floor(time.time() if now is None else now)
    claims: dict[str, object] = {}
    if sub is not None:
        claims["sub"] = sub
    claims["iat"] = iat
    claims["exp"] = iat + math.ceil(ttl)
    if topics is not None:
        claims["topics"] = list(topics)
    if publish is not None:
        claims["publish"] = list(publish)
    signing_input = f"{_b64url_json({'alg': 'HS256', 'typ': 'JWT'})}.{_b64url_json(claims)}"
    signature = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def _check_list(name: str, value: Sequence[str] | None) -> None:
    # A bare string is a Sequence[str] too, and would become a list of its characters.
    if isinstance(value, str):
        raise TypeError(f"mint_token: {name} must be a list of patterns, not a string")


def _b64url_json(value: dict[str, object]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
