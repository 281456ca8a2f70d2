/**
 * verifyWebhook against a real hub: the online/offline calls `herald serve --webhook-url` makes
 * verify under the shared secret, and a changed body, another secret or no signature do not.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  WEBHOOK_SIGNATURE_HEADER,
  WebhookVerificationError,
  mintToken,
  verifyWebhook,
  type HeraldWebhook,
} from '../src/index.js';
import { Hub, SECRET, ScriptedServer, openStream } from './hub.js';

const WEBHOOK_SECRET = 'webhook-test-secret';

/** Webhook calls as they arrive, awaited one by one. */
class Calls {
  private readonly arrived: Array<{ body: string; signature: string | undefined }> = [];
  private readonly waiters: Array<() => void> = [];

  push(body: string, signature: string | undefined): void {
    this.arrived.push({ body, signature });
    this.waiters.shift()?.();
  }

  async next(timeoutMs = 10_000): Promise<{ body: string; signature: string | undefined }> {
    if (this.arrived.length === 0) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no webhook call within ${timeoutMs} ms`)), timeoutMs);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const call = this.arrived.shift();
    if (!call) throw new Error('woken without a call');
    return call;
  }
}

const calls = new Calls();
let receiver: ScriptedServer;
let hub: Hub;

beforeAll(async () => {
  receiver = await new ScriptedServer((req, body, res) => {
    const signature = req.headers[WEBHOOK_SIGNATURE_HEADER];
    calls.push(body, Array.isArray(signature) ? signature[0] : signature);
    res.writeHead(204);
    res.end();
  }).start();
  hub = await new Hub().start([
    '--webhook-url',
    `${receiver.url}/hooks/herald`,
    '--webhook-secret',
    WEBHOOK_SECRET,
    '--offline-delay',
    '200ms',
  ]);
});

afterAll(async () => {
  await hub?.stop();
  await receiver?.stop();
});

describe('verifyWebhook', () => {
  it("verifies the hub's user.online and user.offline calls and returns what they say", async () => {
    const before = Date.now();
    const stream = await openStream(hub.url, mintToken({ secret: SECRET, sub: 'webhook-user', ttl: 60 }));
    const online = await calls.next();
    expect(verifyWebhook(online.body, online.signature, WEBHOOK_SECRET)).toEqual<HeraldWebhook>({
      type: 'user.online',
      user: 'webhook-user',
      at: expect.any(Number) as number,
    });
    stream.close();
    const offline = await calls.next();
    const left = verifyWebhook(Buffer.from(offline.body), offline.signature, WEBHOOK_SECRET);
    expect(left.type).toBe('user.offline');
    expect(left.user).toBe('webhook-user');
    expect(left.at).toBeGreaterThanOrEqual(before);

    // The same call, altered in any way, does not verify.
    const tampered = online.body.replace('webhook-user', 'someone-else');
    expect(() => verifyWebhook(tampered, online.signature, WEBHOOK_SECRET)).toThrow(WebhookVerificationError);
    expect(() => verifyWebhook(online.body, online.signature, 'another-secret')).toThrow(WebhookVerificationError);
    expect(() => verifyWebhook(online.body, undefined, WEBHOOK_SECRET)).toThrow(/missing Herald-Signature/);
    expect(() => verifyWebhook(online.body, 'sha256=00', WEBHOOK_SECRET)).toThrow(WebhookVerificationError);
  });

  it('refuses a correctly signed body that is not a webhook, and an empty secret', async () => {
    const { createHmac } = await import('node:crypto');
    const body = '{"type":"user.deleted","user":"u","at":1}';
    const signature = `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(body).digest('hex')}`;
    expect(() => verifyWebhook(body, signature, WEBHOOK_SECRET)).toThrow(/not \{type, user, at\}/);
    expect(() => verifyWebhook(body, signature, '')).toThrow(TypeError);
  });
});
