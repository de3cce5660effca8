// Builds and locates the project's Java tooling (the local Flink runner, the local Kafka broker).
//
// Each tool is an independent Maven project under java/<module>/ (pom.xml, src/main/java). Nothing
// built is committed: the first caller compiles the module with the machine's Maven (dependencies
// cached in ~/.m2) and writes its runtime classpath next to the classes; later callers reuse the
// build until a file under the module changes (a stamp holds the hash of pom.xml and src/).
// Concurrent callers (jest workers, a script) serialise on a lock directory so one build runs.
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, join, relative } from 'node:path';

/** The Java tools of the project, one Maven module each under `java/`. */
export type JavaModule = 'flink-runner' | 'kafka-broker';

/** The repository root (this file lives in scripts/). */
export const repoRoot = join(__dirname, '..');

const LOCK_STALE_MS = 15 * 60_000;

/** Raised when Java or Maven is missing or a module does not build; the message says what to do. */
export class JavaToolError extends Error {}

function moduleDir(module: JavaModule): string {
  return join(repoRoot, 'java', module);
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .flatMap((entry) => {
      const path = join(dir, entry);
      return statSync(path).isDirectory() ? filesUnder(path) : [path];
    });
}

function sourceHash(module: JavaModule): string {
  const dir = moduleDir(module);
  const hash = createHash('sha256');
  for (const file of [join(dir, 'pom.xml'), ...filesUnder(join(dir, 'src'))]) {
    hash.update(relative(dir, file)).update('\0').update(readFileSync(file)).update('\0');
  }
  return hash.digest('hex');
}

function requireTool(command: string, args: string[], what: string): void {
  const probe = spawnSync(command, args, { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new JavaToolError(`${what} is required (\`${command} ${args.join(' ')}\` failed): install it, or put it on PATH.`);
  }
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function withLock<T>(dir: string, work: () => T): T {
  const lock = join(dir, 'target', '.build-lock');
  mkdirSync(join(dir, 'target'), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // A lock left by a killed build would block every later run: take it over when it is old.
      if (Date.now() - statSync(lock).mtimeMs > LOCK_STALE_MS) rmSync(lock, { recursive: true, force: true });
      else sleep(250);
    }
  }
  try {
    return work();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * Compiles `java/<module>` if it changed since the last build, and returns the classpath to run it
 * with (`target/classes` plus its runtime dependencies).
 */
export function javaClasspath(module: JavaModule): string {
  const dir = moduleDir(module);
  if (!existsSync(join(dir, 'pom.xml'))) throw new JavaToolError(`java/${module}/pom.xml is missing.`);
  const stampFile = join(dir, 'target', '.adstream-build-stamp');
  const classpathFile = join(dir, 'target', 'runtime-classpath.txt');
  const classpath = () => [join(dir, 'target', 'classes'), readFileSync(classpathFile, 'utf8').trim()].filter(Boolean).join(delimiter);

  const digest = sourceHash(module);
  const upToDate = () => existsSync(stampFile) && existsSync(classpathFile) && readFileSync(stampFile, 'utf8').trim() === digest;
  if (upToDate()) return classpath();

  return withLock(dir, () => {
    if (upToDate()) return classpath();
    requireTool('java', ['-version'], 'Java 17+');
    requireTool('mvn', ['-v'], 'Apache Maven 3.8+');
    const started = Date.now();
    try {
      execFileSync(
        'mvn',
        ['-B', '-q', '-f', join(dir, 'pom.xml'), 'compile', 'dependency:build-classpath', '-Dmdep.includeScope=runtime', `-Dmdep.outputFile=${classpathFile}`],
        { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
      );
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string };
      throw new JavaToolError(`java/${module}: the Maven build failed.\n${e.stdout ?? ''}${e.stderr ?? ''}`.trim());
    }
    writeFileSync(stampFile, `${digest}\n`);
    process.stderr.write(`java: built java/${module} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    return classpath();
  });
}
