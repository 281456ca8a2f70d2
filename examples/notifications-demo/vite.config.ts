import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// Uses the packages' sources from clients/js directly, so the demo always runs the current code.
const pkg = (path: string): string => fileURLToPath(new URL(`../../clients/js/packages/${path}`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: {
      '@herald/client': pkg('client/src/index.ts'),
      '@herald/react': pkg('react/src/index.tsx'),
    },
    dedupe: ['react', 'react-dom'],
  },
  esbuild: { jsx: 'automatic' },
  build: { outDir: 'dist', emptyOutDir: true },
});
