import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StaleBundleError } from './errors';

/** File `npm run bundle` writes next to the bundles. */
export const BUNDLE_MANIFEST = 'manifest.json';

/** The part of `build/lambdas/manifest.json` the freshness check reads. */
export interface BundleManifest {
  /** One entry per handler. */
  readonly handlers: Readonly<Record<string, { readonly sources?: Readonly<Record<string, string>> }>>;
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/**
 * What changed since a bundle was built: each source the manifest recorded whose content now
 * differs or that is gone, and (for db-migrate) migrations added since. Empty when fresh.
 */
export function changedSources(manifest: BundleManifest, handler: string, sourceRoot: string): string[] {
  const recorded = manifest.handlers[handler]?.sources;
  if (!recorded) return ['(the manifest records no sources: built by an older bundle script)'];
  const changed = Object.entries(recorded)
    .filter(([file, digest]) => !existsSync(join(sourceRoot, file)) || sha256(join(sourceRoot, file)) !== digest)
    .map(([file]) => file);
  if (handler === 'db-migrate') {
    const migrations = join(sourceRoot, 'db', 'migrations');
    const present = existsSync(migrations) ? readdirSync(migrations).filter((f) => f.endsWith('.sql')) : [];
    for (const file of present) if (!(`db/migrations/${file}` in recorded)) changed.push(`db/migrations/${file}`);
  }
  return changed;
}

/**
 * Refuses bundles older than their sources, so no synth, diff or deploy packages stale handler
 * code. Reads `<bundleRoot>/manifest.json` and re-hashes every source it lists under
 * `sourceRoot`; throws a StaleBundleError naming each stale handler and its changed files.
 */
export function assertBundlesFresh(bundleRoot: string, handlers: readonly string[], sourceRoot: string): void {
  const manifestPath = join(bundleRoot, BUNDLE_MANIFEST);
  if (!existsSync(manifestPath)) throw new StaleBundleError(bundleRoot, [`${BUNDLE_MANIFEST} is missing`]);
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as BundleManifest;
  const stale = handlers.flatMap((handler) => {
    const changed = changedSources(manifest, handler, sourceRoot);
    return changed.length === 0 ? [] : [`${handler}: ${changed.slice(0, 5).join(', ')}${changed.length > 5 ? ` and ${changed.length - 5} more` : ''}`];
  });
  if (stale.length > 0) throw new StaleBundleError(bundleRoot, stale);
}
