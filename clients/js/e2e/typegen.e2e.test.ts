/**
 * Typed events end to end: `herald typegen` turns a schema file into the `Events` map that
 * `createClient<Events>()` takes (checked with the TypeScript compiler, positive and negative
 * uses), and `herald serve --schema` with the same file delivers valid events to the client
 * and refuses invalid ones.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { createClient, type HeraldClient } from '@herald/client';
import { HERALD, Hub, PUBLISH_KEY, freePort, subscriberToken, until } from './harness.js';

const SCHEMA = {
  events: {
    order_update: {
      type: 'object',
      required: ['orderId', 'status'],
      properties: {
        orderId: { type: 'string' },
        status: { enum: ['pending', 'shipped', 'delivered'] },
        note: { type: 'string' },
      },
      additionalProperties: false,
    },
    message: { type: 'string' },
  },
};

const supported = spawnSync(HERALD, ['typegen', '--help']).status === 0;
const dir = mkdtempSync(join(tmpdir(), 'herald-typegen-'));
const schemaPath = join(dir, 'events.schema.json');
writeFileSync(schemaPath, JSON.stringify(SCHEMA, null, 2));

let hub: Hub | undefined;
let client: HeraldClient | undefined;
afterAll(async () => {
  client?.close();
  await hub?.kill();
});

describe.skipIf(!supported)('typed events: herald typegen + serve --schema', () => {
  it('the generated Events map types client.on (tsc: positives compile, negatives are errors)', () => {
    const generated = spawnSync(HERALD, ['typegen', '--schema', schemaPath], { encoding: 'utf8' });
    expect(generated.status, generated.stderr).toBe(0);
    writeFileSync(join(dir, 'events.ts'), generated.stdout);
    writeFileSync(
      join(dir, 'usage.ts'),
      `import { createClient } from '@herald/client';
import type { Events } from './events';

const client = createClient<Events>({ url: '/events' });
client.on('order_update', (order, meta) => {
  const status: 'pending' | 'shipped' | 'delivered' = order.status;
  const id: string = order.orderId;
  const note: string | undefined = order.note;
  const name: 'order_update' = meta.event;
  return [status, id, note, name];
});
client.on('message', (text) => text.toUpperCase());
// @ts-expect-error not an event of the schema
client.on('order_created', () => undefined);
// @ts-expect-error status is one of the enum's values
client.on('order_update', (order) => order.status === 'cancelled');
// @ts-expect-error orderId is a string
client.on('order_update', (order) => order.orderId.toFixed());
// @ts-expect-error no such property (additionalProperties: false)
client.on('order_update', (order) => order.total);
// @ts-expect-error message is a string
client.on('message', (text) => text.orderId);
`,
    );
    const clientSrc = fileURLToPath(new URL('../packages/client/src/index.ts', import.meta.url));
    const program = ts.createProgram([join(dir, 'usage.ts')], {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
      types: [],
      skipLibCheck: true,
      baseUrl: dir,
      paths: { '@herald/client': [clientSrc] },
    });
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => {
      const where = d.file && d.start !== undefined ? `${d.file.fileName}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}` : '';
      return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    });
    expect(diagnostics).toEqual([]);
  });

  it('serve --schema delivers valid events to the client and refuses invalid ones with 400', async () => {
    hub = new Hub(await freePort(), 'http://127.0.0.1:1', ['--schema', schemaPath]);
    await hub.start();
    type Events = { order_update: { orderId: string; status: 'pending' | 'shipped' | 'delivered'; note?: string } };
    const typed = createClient<Events>({ url: `${hub.url}/events`, token: subscriberToken('ty') });
    client = typed as unknown as HeraldClient;
    const got: string[] = [];
    typed.on('order_update', (o) => got.push(`${o.orderId}:${o.status}`));
    await until(() => typed.state, (s) => s === 'open', 'open');

    const bad = await fetch(`${hub.url}/publish`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${PUBLISH_KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ user: 'ty', event: 'order_update', data: { orderId: '1', status: 'cancelled' } }),
    });
    expect(bad.status).toBe(400);
    await hub.publish({ user: 'ty', event: 'order_update', data: { orderId: '1', status: 'shipped' } });
    expect(await until(() => [...got], (g) => g.length === 1, 'typed event')).toEqual(['1:shipped']);
  });
});
