import type { IncomingMessage, ServerResponse } from 'node:http';
import { mintTokenWithExpiry } from './token.js';

/** The signed-in user's id, or nothing when the request has no session. */
export type UserId = string | number | null | undefined;

export interface TokenHandlerOptions<Req extends IncomingMessage = IncomingMessage> {
  /** The hub's `--jwt-secret`. */
  secret: string;
  /** Reads the signed-in user from the request (your session: `req.user?.id`). Nothing → 401. */
  getUser: (req: Req) => UserId | Promise<UserId>;
  /** Topic patterns the token allows: fixed, or per user. Absent: public topics only. */
  topics?: readonly string[] | ((user: string, req: Req) => readonly string[] | Promise<readonly string[]>);
  /** Token lifetime in seconds. Default 3600. */
  ttl?: number;
}

/** What the handler answers: the token and its expiry in Unix seconds (the JWT's `exp`). */
export interface TokenResponse {
  token: string;
  expiresAt: number;
}

export type TokenRequestHandler<Req extends IncomingMessage = IncomingMessage> = (
  req: Req,
  res: ServerResponse,
  next?: (error?: unknown) => void,
) => Promise<void>;

/**
 * A request handler for Express, Connect or plain `node:http` that mints a subscriber token for
 * the signed-in user: `200 {"token", "expiresAt"}`, or `401 {"error": "unauthorized"}` when
 * `getUser` returns nothing. The browser's `@herald/client` calls it from `getToken`.
 *
 * ```ts
 * app.get('/api/herald-token', tokenHandler({ secret, getUser: (req) => req.user?.id, topics: ['news/**'] }));
 * ```
 *
 * Errors thrown by `getUser` or `topics` go to `next(error)` when there is one (Express,
 * Connect), else they are answered with a bare 500.
 */
export function tokenHandler<Req extends IncomingMessage = IncomingMessage>(
  options: TokenHandlerOptions<Req>,
): TokenRequestHandler<Req> {
  const { secret, getUser, topics, ttl } = options;
  if (!secret) throw new TypeError('tokenHandler: secret is required');
  return async (req, res, next) => {
    let body: TokenResponse;
    try {
      const id = await getUser(req);
      if (id === null || id === undefined || id === '') {
        send(res, 401, { error: 'unauthorized', message: 'not signed in' });
        return;
      }
      const sub = String(id);
      const allowed = typeof topics === 'function' ? await topics(sub, req) : topics;
      body = mintTokenWithExpiry({
        secret,
        sub,
        ...(allowed === undefined ? {} : { topics: allowed }),
        ...(ttl === undefined ? {} : { ttl }),
      });
    } catch (error) {
      if (next) next(error);
      else send(res, 500, { error: 'internal', message: 'could not issue a token' });
      return;
    }
    send(res, 200, body);
  };
}

function send(res: ServerResponse, status: number, body: object): void {
  const json = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  // A token is a credential: no shared cache or browser cache may keep it.
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Length', Buffer.byteLength(json));
  res.end(json);
}
