export { HeraldPublisher, type PublisherOptions } from './publisher.js';
export { HeraldError, type HeraldErrorCode, type HeraldErrorInit } from './errors.js';
export { backoffDelay, parseRetryAfter, type RetryOptions } from './retry.js';
export {
  PUBLISH_BROADCAST,
  PUBLISH_USERS,
  mintToken,
  mintTokenWithExpiry,
  type MintTokenOptions,
  type MintedToken,
  type PublisherTokenOptions,
  type SubscriberTokenOptions,
} from './token.js';
export {
  tokenHandler,
  type TokenHandlerOptions,
  type TokenRequestHandler,
  type TokenResponse,
  type UserId,
} from './handler.js';
export type { EventMap, EventName, EventOptions, EventsOf, PublishItem, SendOptions, Targets } from './types.js';
export {
  WEBHOOK_SIGNATURE_HEADER,
  WebhookVerificationError,
  verifyWebhook,
  type HeraldWebhook,
} from './webhook.js';
