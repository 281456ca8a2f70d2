import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/** Bundles e2e/page.tsx (with the packages' built dist) into e2e/dist. */
export async function buildPage(): Promise<string> {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const out = `${here}dist`;
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: [`${here}page.tsx`],
    bundle: true,
    format: 'esm',
    outfile: `${out}/page.js`,
    jsx: 'automatic',
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'warning',
    sourcemap: 'inline',
  });
  copyFileSync(`${here}index.html`, `${out}/index.html`);
  return out;
}

/** Bundles e2e/fes-page.ts (the real `@microsoft/fetch-event-source`) into e2e/dist-fes. */
export async function buildFetchEventSourcePage(): Promise<string> {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const out = `${here}dist-fes`;
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: [`${here}fes-page.ts`],
    bundle: true,
    format: 'esm',
    outfile: `${out}/fes.js`,
    logLevel: 'warning',
    sourcemap: 'inline',
  });
  writeFileSync(
    `${out}/index.html`,
    '<!doctype html><html><head><meta charset="utf-8"><title>fetch-event-source e2e</title></head>' +
      '<body><script type="module" src="fes.js"></script></body></html>',
  );
  return out;
}
