// Jest transformer: TypeScript and ESM (dt-sql-parser ships ESM only) to CommonJS with esbuild,
// which the project already uses for bundling. esbuild's platform binaries are all on the
// package registry this project installs from, unlike some other transformers' binaries.
const { transformSync } = require('esbuild');
const { createHash } = require('node:crypto');

const OPTIONS = { format: 'cjs', target: 'node20', sourcemap: 'inline', sourcesContent: false, keepNames: true };

module.exports = {
  process(source, filename) {
    const loader = filename.endsWith('.ts') ? 'ts' : 'js';
    const { code } = transformSync(source, { ...OPTIONS, loader, sourcefile: filename });
    return { code };
  },
  getCacheKey(source, filename) {
    return createHash('sha256').update('esbuild-v1\0').update(filename).update('\0').update(source).digest('hex');
  },
};
