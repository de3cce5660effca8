import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(__dirname, '..', '..');

function sourceFiles(dir: string): string[] {
  const full = join(root, dir);
  return readdirSync(full).flatMap((entry) => {
    const path = join(full, entry);
    if (statSync(path).isDirectory()) return sourceFiles(relative(root, path));
    return /\.(ts|mjs|js)$/.test(entry) ? [relative(root, path)] : [];
  });
}

function importsOf(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  return [...text.matchAll(/(?:from\s+|require\(\s*|import\(\s*)['"]([^'"]+)['"]/g)].map((m) => m[1]);
}

describe('architecture', () => {
  test('lambdas/ is a separate program: it never imports cdktf, constructs or the infrastructure', () => {
    const offenders = sourceFiles('lambdas').flatMap((file) =>
      importsOf(file)
        .filter((spec) => /^(cdktf|constructs|@cdktf\/)/.test(spec) || /(^|\/)(constructs|stacks|config)\//.test(spec))
        .map((spec) => `${file} imports ${spec}`),
    );
    expect(offenders).toEqual([]);
  });

  test('provider packages are imported deeply, never through their barrel', () => {
    const files = ['main.ts', ...sourceFiles('stacks'), ...sourceFiles('constructs')];
    const offenders = files.flatMap((file) =>
      importsOf(file)
        .filter(
          (spec) =>
            spec === '@cdktf/provider-aws' || /\.gen\/providers\/confluent\/?$/.test(spec) || /\.gen\/providers\/confluent\/(index|lazy-index)$/.test(spec),
        )
        .map((spec) => `${file} imports ${spec}`),
    );
    expect(offenders).toEqual([]);
  });

  test('infrastructure code reads no environment variables: config is parsed once at the edge', () => {
    const offenders = [...sourceFiles('stacks'), ...sourceFiles('constructs')].filter((file) => /process\.env/.test(readFileSync(join(root, file), 'utf8')));
    expect(offenders).toEqual([]);
  });

  test('the checks above see real files (they cannot pass on an empty tree)', () => {
    expect(sourceFiles('stacks').length).toBeGreaterThan(0);
    expect(sourceFiles('constructs').length).toBeGreaterThan(3);
    expect(sourceFiles('lambdas').length).toBeGreaterThan(3);
  });
});
