/**
 * GIVEN the broker launcher (local/kafka-broker.ts)
 * WHEN the process that started a broker dies without stopping it, or a crashed run left a work
 * directory behind
 * THEN the broker exits by itself and removes its directory, and the next start clears what is
 * left without touching the directories of launchers still running.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { removeStaleBrokers } from '../../local/kafka-broker';
import { REPO_ROOT } from '../lambdas/support/test-database';
import { eventually } from './support/kafka';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('local broker lifecycle', () => {
  test('a broker whose launcher is killed (SIGKILL) exits and deletes its work directory', async () => {
    const tmpRoot = mkdtempSync(join(tmpdir(), 'adstream-lifecycle-'));
    const launcher = spawn(process.execPath, ['-r', 'tsx/cjs', join(REPO_ROOT, 'local/kafka-broker.ts')], {
      cwd: REPO_ROOT,
      env: { ...process.env, TMPDIR: tmpRoot },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    try {
      let output = '';
      launcher.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      launcher.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      await eventually(async () => /^READY broker pid (\d+)/m.test(output), `the launcher's READY line (output so far: ${output})`, 240_000);
      const brokerPid = Number(/^READY broker pid (\d+)/m.exec(output)![1]);
      const workDir = dirname(dirname(/^ADSTREAM_KAFKA_LOG_DIR=(.*)$/m.exec(output)![1]));
      expect(workDir.startsWith(tmpRoot)).toBe(true);
      expect(alive(brokerPid)).toBe(true);

      launcher.kill('SIGKILL');
      await eventually(async () => !alive(brokerPid), `broker ${brokerPid} to exit after its launcher died`, 60_000);
      await eventually(async () => !existsSync(workDir), `${workDir} to be deleted`, 30_000);
    } finally {
      launcher.kill('SIGKILL');
      rmSync(tmpRoot, { recursive: true, force: true });
    }
  }, 300_000);

  test("the next start removes a crashed run's work directory and keeps a live launcher's", () => {
    const tmpRoot = mkdtempSync(join(tmpdir(), 'adstream-stale-'));
    try {
      // A pid that cannot be running: above the kernel's pid limit.
      const crashed = join(tmpRoot, 'adstream-kafka-99999999-deadbeef');
      mkdirSync(join(crashed, 'data', 'kraft'), { recursive: true });
      writeFileSync(join(crashed, 'owner.json'), JSON.stringify({ launcherPid: 99_999_999, brokerPid: 99_999_998 }));
      const unowned = join(tmpRoot, 'adstream-kafka-1-cafe');
      mkdirSync(unowned);
      const hourAgo = new Date(Date.now() - 3600_000);
      utimesSync(unowned, hourAgo, hourAgo);
      // One a launcher has only just made (no owner file yet) stays.
      const justMade = join(tmpRoot, 'adstream-kafka-2-babe');
      mkdirSync(justMade);
      const live = join(tmpRoot, `adstream-kafka-${process.pid}-feed`);
      mkdirSync(live);
      writeFileSync(join(live, 'owner.json'), JSON.stringify({ launcherPid: process.pid }));

      expect(removeStaleBrokers(tmpRoot).sort()).toEqual([unowned, crashed].sort());
      expect(existsSync(crashed)).toBe(false);
      expect(existsSync(live)).toBe(true);
      expect(existsSync(justMade)).toBe(true);
    } finally {
      rmSync(tmpRoot, { recursive: true, force: true });
    }
  });
});
