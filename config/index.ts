import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from './errors';
import { EnvironmentConfig, parseEnvironment } from './schema';

export * from './errors';
export * from './schema';
export type { EnvironmentInput } from './define';

const ENVIRONMENTS_DIR = join(__dirname, 'environments');

/**
 * Loads and validates every environment file under `config/environments/` (one file per
 * environment, so adding `staging` is adding `staging.ts`). The file name must equal the
 * environment's `name`. Sorted by name for a stable synth order.
 */
export function loadEnvironments(directory: string = ENVIRONMENTS_DIR): EnvironmentConfig[] {
  const files = readdirSync(directory)
    .filter((file) => /\.(ts|js)$/.test(file) && !file.endsWith('.d.ts'))
    .sort();
  if (files.length === 0) {
    throw new ConfigError('config/environments', [], 'at least one environment file such as dev.ts');
  }
  return files.map((file) => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const module = require(join(directory, file)) as { default?: unknown };
    const config = parseEnvironment(module.default);
    const expected = file.replace(/\.(ts|js)$/, '');
    if (config.name !== expected) {
      throw new ConfigError(`${expected}.name`, config.name, `"${expected}", the name of its file config/environments/${file}`);
    }
    return config;
  });
}

/** Loads one environment by name, or throws naming the ones that exist. */
export function loadEnvironment(name: string, directory?: string): EnvironmentConfig {
  const all = loadEnvironments(directory);
  const found = all.find((env) => env.name === name);
  if (!found) throw new ConfigError('--env', name, `one of ${all.map((e) => JSON.stringify(e.name)).join(', ')}`);
  return found;
}
