"""Publish events to the Herald hub and mint subscriber tokens.

``Publisher`` / ``AsyncPublisher`` send events over ``POST /publish`` (``send_to_user``,
``send_to_users``, ``to_topic``, ``broadcast``, ``publish``, ``publish_batch``) with bounded
retries; ``mint_token`` signs the JWTs browsers subscribe with; failures raise ``HeraldError``;
``verify_webhook`` checks the hub's signed online/offline webhook calls.
"""

from ._errors import HUB_CODES, HeraldError
from ._publisher import (
    AsyncPublisher,
    Publisher,
    PublishItem,
    backoff_delay,
    parse_retry_after,
)
from ._token import PUBLISH_BROADCAST, PUBLISH_USERS, mint_token
from ._webhook import (
    WEBHOOK_SIGNATURE_HEADER,
    Webhook,
    WebhookVerificationError,
    verify_webhook,
)

__all__ = [
    "HUB_CODES",
    "PUBLISH_BROADCAST",
    "PUBLISH_USERS",
    "WEBHOOK_SIGNATURE_HEADER",
    "AsyncPublisher",
    "HeraldError",
    "PublishItem",
    "Publisher",
    "Webhook",
    "WebhookVerificationError",
    "backoff_delay",
    "mint_token",
    "parse_retry_after",
    "verify_webhook",
]

__version__ = "0.1.0"
