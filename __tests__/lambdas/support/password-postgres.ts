/**
 * A private Postgres server that checks passwords (SCRAM), for tests of what happens when a
 * password changes. The shared test server trusts every local connection, so a changed
 * password would go unnoticed there. Started from the local Postgres binaries on a free port,
 * in a temporary directory; `stop` shuts it down and removes the directory.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A running password-checking Postgres. */
export interface PasswordPostgres {
  /** Port on 127.0.0.1. */
  readonly port: number;
  /** Superuser connection string (password included). */
  readonly superuserUrl: string;
  /** Stops the server and deletes its files. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function binDir(): Promise<string> {
  const { stdout } = await run('pg_config', ['--bindir']).catch((cause: unknown) => {
    throw new Error('pg_config not found: the Postgres server binaries (initdb, pg_ctl) are needed for password tests', { cause });
  });
  return stdout.trim();
}

/** Starts the server; `name` (letters, digits, dashes) marks its temporary directory. */
export async function startPasswordPostgres(name: string): Promise<PasswordPostgres> {
  const bin = await binDir();
  const dir = mkdtempSync(path.join(tmpdir(), `adstream-${name}-pg-`));
  const password = randomBytes(12).toString('hex');
  writeFileSync(path.join(dir, 'pw'), `${password}\n`);
  // Postgres refuses to run as root; as root (containers), run it as the postgres user.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    chownSync(dir, Number(stdout.trim()), Number(gid.trim()));
    chownSync(path.join(dir, 'pw'), Number(stdout.trim()), Number(gid.trim()));
  }
  const pg = (tool: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', path.join(bin, tool), ...args]) : run(path.join(bin, tool), args);
  const data = path.join(dir, 'data');
  await pg('initdb', ['-D', data, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${path.join(dir, 'pw')}`, '-E', 'UTF8', '--no-sync']);
  const port = await freePort();
  await pg('pg_ctl', [
    '-D',
    data,
    '-l',
    path.join(dir, 'log'),
    '-w',
    '-o',
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=16MB -c max_connections=20`,
    'start',
  ]);
  return {
    port,
    superuserUrl: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    async stop() {
      await pg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
