#!/usr/bin/env node
// Starts the example app:
//
//   HERALD_PUBLISH_KEY=dev-publish-key node server.mjs
//
// next to a hub started with
//
//   herald serve --auth-url http://127.0.0.1:3000/herald/auth \
//     --cors-origin http://127.0.0.1:3000 --publish-key dev-publish-key
//
// Environment: PORT (3000), HOST (127.0.0.1), HERALD_URL (http://127.0.0.1:8080),
// HERALD_PUBLISH_KEY (required), SESSION_SECRET (random per start if unset).
import { randomBytes } from 'node:crypto';

let createApp;
try {
  ({ createApp } = await import('./app.mjs'));
} catch (error) {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
  console.error(`${error.message}\n(run \`npm ci\` here, and build the packages: cd ../../clients/js && npm ci && npm run build)`);
  process.exit(2);
}

const port = Number(process.env.PORT ?? 3000);
const host = process.env.HOST ?? '127.0.0.1';
const hubUrl = process.env.HERALD_URL ?? 'http://127.0.0.1:8080';
const publishKey = process.env.HERALD_PUBLISH_KEY;
if (!publishKey) {
  console.error('HERALD_PUBLISH_KEY is required (one of the hub\'s --publish-key values)');
  process.exit(2);
}
const sessionSecret = process.env.SESSION_SECRET ?? randomBytes(24).toString('base64url');

const server = createApp({ hubUrl, publishKey, sessionSecret }).listen(port, host, () => {
  const address = server.address();
  const actual = typeof address === 'object' && address ? address.port : port;
  console.log(`express-session example listening on http://${host}:${actual} (hub: ${hubUrl})`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
