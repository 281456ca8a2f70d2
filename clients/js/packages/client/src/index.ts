export { createClient, type ClientOptions, type HeraldClient, type LatestEvent } from './client.js';
export type {
  ConnectionOptions,
  EventSourceConstructor,
  EventSourceLike,
  FetchLike,
  TokenProvider,
} from './connection.js';
export type {
  BroadcastChannelConstructor,
  BroadcastChannelLike,
  CrossTabOptions,
  LockManagerLike,
} from './crosstab.js';
export { backoffDelay, type BackoffOptions } from './backoff.js';
export { tokenExpiry } from './jwt.js';
export {
  DEFAULT_MAX_BUFFER,
  SseBufferLimitError,
  SseParser,
  type SseItem,
  type SseMessage,
  type SseParserOptions,
} from './parser.js';
export {
  HeraldError,
  MISSED_EVENT,
  type ConnectionSnapshot,
  type ConnectionState,
  type EventMap,
  type EventMeta,
  type EventName,
  type HeraldErrorCode,
  type Listener,
  type MissedInfo,
  type Unsubscribe,
} from './types.js';
