import { createHmac } from 'node:crypto';

/** `publish` claim entry: the token may publish to any user. */
export const PUBLISH_USERS = '@users';
/** `publish` claim entry: the token may broadcast. */
export const PUBLISH_BROADCAST = '@broadcast';

interface TokenOptionsBase {
  /** The hub's `--jwt-secret` (HS256). */
  secret: string;
  /** Lifetime in seconds (the `exp` claim). Default 3600. The hub ends a stream at `exp`. */
  ttl?: number;
  /** Topic patterns the holder may subscribe to (`orders/*`, `news/**`). Absent: public topics only. */
  topics?: readonly string[];
}

/** A subscriber token: `sub` is the user whose events the stream receives. */
export interface SubscriberTokenOptions extends TokenOptionsBase {
  sub: string;
  publish?: readonly string[];
}

/**
 * A publisher token: `publish` lists the topic patterns it may publish to, plus
 * {@link PUBLISH_USERS} and {@link PUBLISH_BROADCAST}.
 */
export interface PublisherTokenOptions extends TokenOptionsBase {
  sub?: string;
  publish: readonly string[];
}

export type MintTokenOptions = SubscriberTokenOptions | PublisherTokenOptions;

/** A token and its expiry, in Unix seconds (the `exp` claim). */
export interface MintedToken {
  token: string;
  expiresAt: number;
}

/**
 * Signs a JWT for the hub (HS256 with `node:crypto`): claims `sub`, `iat`, `exp`, and `topics`
 * and `publish` when given.
 *
 * ```ts
 * mintToken({ secret, sub: 'user_123', topics: ['orders/*'], ttl: 3600 });   // subscriber
 * mintToken({ secret, publish: ['orders/**', PUBLISH_USERS] });              // publisher
 * ```
 */
export function mintToken(options: MintTokenOptions): string {
  return mintTokenWithExpiry(options).token;
}

/** {@link mintToken}, also returning the expiry. */
export function mintTokenWithExpiry(options: MintTokenOptions, now: number = Date.now()): MintedToken {
  const { secret, sub, topics, publish } = options;
  const ttl = options.ttl ?? 3600;
  if (!secret) throw new TypeError('mintToken: secret is required');
  if (sub === undefined && publish === undefined) throw new TypeError('mintToken: sub or publish is required');
  if (sub !== undefined && sub === '') throw new TypeError('mintToken: sub must not be empty');
  if (!Number.isFinite(ttl) || ttl <= 0) throw new RangeError('mintToken: ttl must be a number of seconds > 0');
  const iat = Math.floor(now / 1000);
  const exp = iat + Math.ceil(ttl);
  const claims: Record<string, unknown> = {};
  if (sub !== undefined) claims['sub'] = sub;
  claims['iat'] = iat;
  claims['exp'] = exp;
  if (topics !== undefined) claims['topics'] = [...topics];
  if (publish !== undefined) claims['publish'] = [...publish];
  const signingInput = `${base64url({ alg: 'HS256', typ: 'JWT' })}.${base64url(claims)}`;
  const signature = createHmac('sha256', secret).update(signingInput).digest('base64url');
  return { token: `${signingInput}.${signature}`, expiresAt: exp };
}

function base64url(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
