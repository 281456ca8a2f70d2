import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    alias: {
      '@herald/client': fileURLToPath(new URL('./packages/client/src/index.ts', import.meta.url)),
      '@herald/react': fileURLToPath(new URL('./packages/react/src/index.tsx', import.meta.url)),
      '@herald/server': fileURLToPath(new URL('./packages/server/src/index.ts', import.meta.url)),
    },
  },
  esbuild: { jsx: 'automatic' },
  test: {
    reporters: ['default', ['json', { outputFile: 'test-results/unit.json' }]],
    include: ['packages/*/test/**/*.test.{ts,tsx}'],
    environment: 'node',
    pool: 'threads',
    poolOptions: { threads: { maxThreads: 2, minThreads: 1 } },
  },
});
