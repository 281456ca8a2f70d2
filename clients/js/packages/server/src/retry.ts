export interface RetryOptions {
  /** Retries after the first attempt (so at most `retries + 1` requests). Default 3. */
  retries?: number;
  /** Ceiling of the first retry's delay. Default 250 ms. */
  initialDelayMs?: number;
  /**
   * Ceiling of any backoff delay, and the longest `Retry-After` the publisher waits out: a hub
   * asking for more gets no retry (the error carries `retryAfterMs`). Default 30 000 ms.
   */
  maxDelayMs?: number;
}

/**
 * Exponential backoff with "equal jitter": half of `min(max, initial × 2^attempt)` fixed, the
 * other half random. The random half spreads publishers that failed together; the fixed half
 * keeps a few bounded retries from all firing at once against a hub that is restarting.
 */
export function backoffDelay(
  attempt: number,
  initialDelayMs: number,
  maxDelayMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.max(0, attempt));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** `Retry-After` as milliseconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Resolves after `ms`, or rejects with the signal's reason when it is aborted first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
