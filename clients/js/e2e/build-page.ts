import { copyFileSync, mkdirSync } from 'node:fs';
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
