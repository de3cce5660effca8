import { ConfigError } from '../../config/errors';
import { defaultFlinkConfig, parseFlinkConfig } from '../../config/flink';

describe('parseFlinkConfig', () => {
  it('fills every default from an empty section (seed: 20 CFU, top 50, TTL 25 h / 6 h, v1 running)', () => {
    expect(parseFlinkConfig(undefined, 'dev.flink', false)).toEqual({ ...defaultFlinkConfig, allowUnreleasedVersions: true });
    expect(parseFlinkConfig({}, 'prod.flink', true)).toEqual(defaultFlinkConfig);
  });

  it('reads pipeline versions, stopped flags and retired versions', () => {
    const flink = parseFlinkConfig(
      { maxCfu: 10, rankingTopN: 20, pipelines: { rtbRanking: { version: 3, retiredVersions: [2], stopped: true } } },
      'dev.flink',
      false,
    );
    expect(flink.maxCfu).toBe(10);
    expect(flink.rankingTopN).toBe(20);
    expect(flink.pipelines['rtb-ranking']).toEqual({ version: 3, stopped: true, retiredVersions: [2] });
    expect(flink.pipelines.attribution).toEqual({ version: 2, stopped: false, retiredVersions: [1] });
  });

  it.each([
    [{ maxCfu: 15 }, 'dev.flink.maxCfu', /one of 5, 10, 20, 30, 40, 50/],
    [{ maxCfu: 0 }, 'dev.flink.maxCfu', /an integer from 1 to 50/],
    [{ rankingTopN: 0 }, 'dev.flink.rankingTopN', /an integer from 1 to 1000/],
    [{ stateTtl: { attributionHours: 24 } }, 'dev.flink.stateTtl.attributionHours', /an integer from 25 to 720/],
    [{ stateTtl: { duplicateClicksHours: 0 } }, 'dev.flink.stateTtl.duplicateClicksHours', /an integer from 1 to 168/],
    [{ stateTtl: { dedup: 1 } }, 'dev.flink.stateTtl.dedup', /no such field/],
    [
      { pipelines: { ranking: { version: 1 } } },
      'dev.flink.pipelines.ranking',
      /no such field; known fields are sources, performanceMetrics, rtbRanking, attribution, duplicateClicks/,
    ],
    [
      { pipelines: { attribution: { version: 2, retiredVersions: [2] } } },
      'dev.flink.pipelines.attribution.retiredVersions[0]',
      /lower than the running version 2/,
    ],
    [
      { pipelines: { attribution: { version: 3, retiredVersions: [1, 1] } } },
      'dev.flink.pipelines.attribution.retiredVersions[1]',
      /each retired version once/,
    ],
    [{ pipelines: { attribution: { stopped: 'yes' } } }, 'dev.flink.pipelines.attribution.stopped', /true or false/],
    [{ replicas: 1 }, 'dev.flink.replicas', /no such field/],
  ])('fails when %j (at %s)', (raw, field, allowed) => {
    let error: unknown;
    try {
      parseFlinkConfig(raw, 'dev.flink', false);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe(field);
    expect((error as ConfigError).message).toMatch(allowed);
  });

  it('fails when production allows unreleased versions', () => {
    expect(() => parseFlinkConfig({ allowUnreleasedVersions: true }, 'prod.flink', true)).toThrow(
      /prod\.flink\.allowUnreleasedVersions: got true; allowed: false in production/,
    );
  });
});
