/**
 * Why a call failed. The hub's own codes (its `{"error": code, "message": text}` answers) come
 * first; the rest are raised by the publisher itself.
 */
export type HeraldErrorCode =
  | 'bad_request' // 400: malformed body or a bad field
  | 'unauthorized' // 401: unknown publish key, invalid or expired token
  | 'forbidden' // 403: a target outside the publisher token's `publish` claim
  | 'not_found' // 404: the URL does not point at a hub
  | 'payload_too_large' // 413: body over the hub's --max-body-bytes
  | 'too_many_requests' // 429: over the publish rate (retried)
  | 'unavailable' // 503: the broker cannot take events right now (retried)
  | 'http_error' // another status, or an error answer that is not the hub's JSON
  | 'network' // the connection failed or broke (retried)
  | 'timeout' // no complete answer within timeoutMs (retried)
  | 'aborted' // the caller's AbortSignal fired
  | 'invalid_response' // a 200 whose body is not the hub's {"id"} / {"ids"}
  | (string & {}); // codes added by newer hubs

export interface HeraldErrorInit {
  code: HeraldErrorCode;
  message: string;
  /** HTTP status of the hub's answer; absent when there was none (network, timeout, aborted). */
  status?: number;
  /** The hub's `Retry-After`, in milliseconds. */
  retryAfterMs?: number;
  /** Requests made for this call, retries included. */
  attempts?: number;
  cause?: unknown;
}

/** Every failure of a publishing call: the hub's status, error code and message. */
export class HeraldError extends Error {
  override readonly name = 'HeraldError';
  readonly code: HeraldErrorCode;
  readonly status: number | undefined;
  readonly retryAfterMs: number | undefined;
  readonly attempts: number;

  constructor(init: HeraldErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = init.code;
    this.status = init.status;
    this.retryAfterMs = init.retryAfterMs;
    this.attempts = init.attempts ?? 1;
  }

  /** Whether the publisher retries this kind of failure: 429, 503, network errors, timeouts. */
  get retryable(): boolean {
    return (
      this.status === 429 ||
      this.status === 503 ||
      this.code === 'network' ||
      this.code === 'timeout'
    );
  }
}
