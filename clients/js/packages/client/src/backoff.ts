export interface BackoffOptions {
  /** Base delay when the hub sent no `retry:` hint. Default 1000 ms. */
  initialDelayMs?: number;
  /** Upper bound of any delay. Default 30 000 ms. */
  maxDelayMs?: number;
  /** Growth per failed attempt. Default 2. */
  factor?: number;
}

/**
 * Exponential backoff with full jitter: a delay drawn uniformly from
 * `[0, min(max, base * factor^attempt)]`, where `base` is the hub's `retry:` hint when it sent
 * one. Full jitter spreads a crowd of clients reconnecting after a hub restart.
 */
export function backoffDelay(
  attempt: number,
  baseMs: number,
  options: BackoffOptions,
  random: () => number,
): number {
  const max = options.maxDelayMs ?? 30_000;
  const factor = options.factor ?? 2;
  const ceiling = Math.min(max, baseMs * Math.pow(factor, Math.max(0, attempt)));
  return Math.floor(random() * ceiling);
}
