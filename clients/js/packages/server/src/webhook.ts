/**
 * Checking the hub's online/offline webhooks (`--webhook-url`, `--webhook-secret`).
 *
 * The hub signs each call's raw body: `Herald-Signature: sha256=<hex HMAC-SHA256(secret, body)>`.
 * Verify the bytes exactly as they arrived (before any JSON parsing: a re-serialised body has
 * other bytes), compare in constant time, and only then trust what the body says.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The header the hub signs its webhook calls with. */
export const WEBHOOK_SIGNATURE_HEADER = 'herald-signature';

/** What a webhook call tells: a user's first stream opened, or their last one closed. */
export interface HeraldWebhook {
  type: 'user.online' | 'user.offline';
  /** The user's id (the token's `sub`, or the session hook's `user`). */
  user: string;
  /** Unix milliseconds of the transition. Calls may arrive out of order: order by `at`. */
  at: number;
}

/** The call was not signed by a hub holding the secret, or its body is not a webhook. */
export class WebhookVerificationError extends Error {
  override readonly name = 'WebhookVerificationError';
}

/**
 * Verifies a webhook call and returns what it says; throws `WebhookVerificationError` if the
 * signature is missing or wrong (answer such calls `401`) or the body is not a Herald webhook.
 *
 * `body` is the raw request body (with Express: `express.raw({ type: 'application/json' })`);
 * `signature` the `Herald-Signature` header's value.
 */
export function verifyWebhook(
  body: string | Uint8Array,
  signature: string | string[] | null | undefined,
  secret: string,
): HeraldWebhook {
  if (typeof secret !== 'string' || secret === '') throw new TypeError('verifyWebhook: secret must be a non-empty string');
  const given = Array.isArray(signature) ? signature[0] : signature;
  if (typeof given !== 'string' || given === '') {
    throw new WebhookVerificationError('missing Herald-Signature header');
  }
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(bytes).digest('hex')}`);
  const actual = Buffer.from(given.trim());
  // timingSafeEqual needs equal lengths; the length of a well-formed signature is public.
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
    throw new WebhookVerificationError('Herald-Signature does not match the body under this secret');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new WebhookVerificationError('webhook body is not JSON');
  }
  if (!isWebhook(parsed)) throw new WebhookVerificationError('webhook body is not {type, user, at}');
  return parsed;
}

function isWebhook(value: unknown): value is HeraldWebhook {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    (v['type'] === 'user.online' || v['type'] === 'user.offline') &&
    typeof v['user'] === 'string' &&
    typeof v['at'] === 'number' &&
    Number.isFinite(v['at'])
  );
}
