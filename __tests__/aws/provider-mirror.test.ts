import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findProviderMirror, OfflinePlanUnavailable } from './support/terraform';

function mirrorWithProvider(): string {
  const root = mkdtempSync(join(tmpdir(), 'adstream-mirror-'));
  const dir = join(root, 'registry.terraform.io/hashicorp/aws/5.100.0/linux_amd64');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'terraform-provider-aws_v5.100.0_x5'), '');
  return root;
}

describe('finding the hashicorp/aws mirror for the offline plan', () => {
  test('uses ADSTREAM_TF_PROVIDER_MIRROR when it holds the provider', () => {
    const mirror = mirrorWithProvider();
    expect(findProviderMirror({ ADSTREAM_TF_PROVIDER_MIRROR: mirror }, [])).toBe(mirror);
  });

  test('fails loudly when ADSTREAM_TF_PROVIDER_MIRROR points at a directory without the provider', () => {
    const empty = mkdtempSync(join(tmpdir(), 'adstream-empty-'));
    expect(() => findProviderMirror({ ADSTREAM_TF_PROVIDER_MIRROR: empty }, [])).toThrow(OfflinePlanUnavailable);
  });

  test('falls back to well-known places locally', () => {
    const mirror = mirrorWithProvider();
    expect(findProviderMirror({}, ['/nonexistent', mirror])).toBe(mirror);
  });

  test('in CI, no mirror is a failure that says how to fix it, never a skip', () => {
    expect(() => findProviderMirror({ CI: 'true' }, ['/nonexistent'])).toThrow(
      /No hashicorp\/aws 5\.100\.0 provider mirror found.*ADSTREAM_TF_PROVIDER_MIRROR/s,
    );
  });

  test('locally, no mirror means trying the registry (undefined), whose failure the plan reports', () => {
    expect(findProviderMirror({}, ['/nonexistent'])).toBeUndefined();
  });
});
