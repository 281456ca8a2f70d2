import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const JS = fileURLToPath(new URL('..', import.meta.url));
export const DEMO = fileURLToPath(new URL('../../../examples/notifications-demo/', import.meta.url));

/**
 * Resolves React and the Herald packages from clients/js (one React copy, the built packages),
 * so the demo needs no `npm ci` of its own to be tested.
 */
const fromWorkspace: Plugin = {
  name: 'from-workspace',
  setup(b) {
    b.onResolve({ filter: /^(react|react-dom|@herald\/client|@herald\/react)(\/.*)?$/ }, async (args) => {
      if (args.pluginData === 'inner') return undefined;
      return b.resolve(args.path, { kind: args.kind, resolveDir: JS, pluginData: 'inner' });
    });
  },
};

/** Bundles examples/notifications-demo (the real demo UI) into e2e/dist-demo. */
export async function buildDemo(): Promise<string> {
  const out = `${JS}e2e/dist-demo`;
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: { app: `${DEMO}src/main.tsx` },
    bundle: true,
    format: 'esm',
    outdir: out,
    jsx: 'automatic',
    define: { 'process.env.NODE_ENV': '"production"' },
    plugins: [fromWorkspace],
    logLevel: 'warning',
  });
  writeFileSync(
    `${out}/index.html`,
    '<!doctype html><html><head><meta charset="utf-8"><link rel="stylesheet" href="app.css"></head>' +
      '<body><div id="root"></div><script type="module" src="app.js"></script></body></html>',
  );
  return out;
}
