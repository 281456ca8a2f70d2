import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const PACKAGES = fileURLToPath(new URL('../../', import.meta.url));

it('no `any` in the sources of any package (strict public types)', () => {
  const offenders: string[] = [];
  for (const pkg of ['client', 'react', 'server']) {
    const dir = `${PACKAGES}${pkg}/src/`;
    for (const file of readdirSync(dir)) {
      const code = readFileSync(dir + file, 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/\/\/.*$/gm, '');
      if (/(:\s*any\b|\bas any\b|<any>|\bany\[\]|,\s*any>)/.test(code)) offenders.push(`${pkg}/src/${file}`);
    }
  }
  expect(offenders).toEqual([]);
});
