import { parseWorkerEnv } from '../../lambdas/shared/env';
import { ConfigError } from '../../lambdas/shared/errors';
import { checkClickAmount, checkInformationalAmount, informationalAmountProblem, toMicros } from '../../lambdas/shared/money';
import { FAIL_FAST_OPTIONS } from '../../lambdas/shared/redis';
import { resolveMigrationsDir } from '../../lambdas/db-migrate/run-migrations';
import path from 'node:path';

const LOCAL = { DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/adstream' };

describe('parseWorkerEnv', () => {
  test('local: DATABASE_URL and REDIS_URL, Asia/Seoul budget days, nothing published', () => {
    const env = parseWorkerEnv({ ...LOCAL, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_KEY_PREFIX: 't1:' });
    expect(env).toMatchObject({
      database: { kind: 'url' },
      redis: { kind: 'url', url: 'redis://127.0.0.1:6379' },
      redisKeyPrefix: 't1:',
      budgetTimeZone: 'Asia/Seoul',
      campaignEventsTopic: 'campaign-events',
    });
    expect(env.alertsTopicArn).toBeUndefined();
    expect(env.kafkaProducer).toBeUndefined();
  });

  test('AWS: secret ARNs, hosts and ports, Confluent bootstrap servers without the scheme', () => {
    const env = parseWorkerEnv({
      DATABASE_SECRET_ARN: 'arn:aws:secretsmanager:ap-northeast-2:1:secret:rds',
      DATABASE_HOST: 'db.internal',
      DATABASE_NAME: 'adstream',
      REDIS_HOST: 'cache.internal',
      REDIS_PORT: '6380',
      REDIS_AUTH_SECRET_ARN: 'arn:aws:secretsmanager:ap-northeast-2:1:secret:redis',
      KAFKA_BOOTSTRAP_SERVERS: 'SASL_SSL://pkc-1.aws.confluent.cloud:9092',
      KAFKA_PRODUCER_SECRET_ARN: 'arn:aws:secretsmanager:ap-northeast-2:1:secret:kafka',
      CAMPAIGN_EVENTS_SCHEMA_ID: '100003',
      BUDGET_TIME_ZONE: 'UTC',
    });
    expect(env.database).toEqual({
      kind: 'secret',
      secretArn: 'arn:aws:secretsmanager:ap-northeast-2:1:secret:rds',
      host: 'db.internal',
      port: 5432,
      database: 'adstream',
    });
    expect(env.redis).toEqual({ kind: 'tls', host: 'cache.internal', port: 6380, authSecretArn: 'arn:aws:secretsmanager:ap-northeast-2:1:secret:redis' });
    expect(env.kafkaProducer?.brokers).toEqual(['pkc-1.aws.confluent.cloud:9092']);
    expect(env.campaignEventsSchemaId).toBe(100003);
  });

  test.each([
    [{}, /DATABASE_URL: is not set/],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL: must use postgres/],
    [{ ...LOCAL, BUDGET_TIME_ZONE: 'Mars/Olympus' }, /IANA time zone/],
    [{ ...LOCAL, REDIS_HOST: 'h', REDIS_PORT: '70000' }, /REDIS_PORT: must be a TCP port/],
    [{ ...LOCAL, KAFKA_BOOTSTRAP_SERVERS: 'h:9092' }, /KAFKA_PRODUCER_SECRET_ARN: .*go together/],
    [{ ...LOCAL, CAMPAIGN_EVENTS_SCHEMA_ID: 'abc' }, /Schema Registry id/],
  ])('fails when the environment is %j', (source, message) => {
    expect(() => parseWorkerEnv(source as Record<string, string>)).toThrow(ConfigError);
    expect(() => parseWorkerEnv(source as Record<string, string>)).toThrow(message);
  });

  test('never echoes a connection string that may hold a password', () => {
    expect(() => parseWorkerEnv({ DATABASE_URL: 'not a url with s3cret' })).toThrow(/^(?!.*s3cret)/);
  });
});

describe('money and cache settings', () => {
  test('amounts are exact decimals checked without floats', () => {
    expect(toMicros('120.5')).toBe(120_500_000n);
    expect(checkClickAmount('0.01')).toBeUndefined();
    expect(checkClickAmount('0')).toMatch(/greater than zero/);
    expect(checkClickAmount('-1')).toMatch(/negative/);
    expect(checkClickAmount('10000000.01')).toMatch(/at most/);
    expect(checkInformationalAmount('0.00')).toBeUndefined();
  });

  test('checkInformationalAmount (a shortcut for plain amounts) agrees with the whole check on every amount', () => {
    const amounts = ['0', '0.0', '-0', '-0.00', '00', '01', '0.1234567', '9999999.999999', '9999999.9999999', '10000000', '10000000.000000', '10000000.000001'];
    amounts.push('99999999', '1e3', '1.', '.5', '+1', '1,5', '１', '1\n', ' 1', '', '-', '-9999999.99', '-10000000.01', '123456789012345678.5');
    let seed = 11;
    const random = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    const characters = '0123456789.-';
    for (let i = 0; i < 20_000; i += 1) {
      amounts.push(Array.from({ length: 1 + random(12) }, () => characters[random(i % 2 === 0 ? 10 : characters.length)]).join(''));
    }
    const disagreements = amounts.filter((text) => checkInformationalAmount(text) !== informationalAmountProblem(text));
    expect(disagreements).toEqual([]);
    expect(amounts.filter((text) => checkInformationalAmount(text) === undefined).length).toBeGreaterThan(1_000);
    expect(amounts.filter((text) => checkInformationalAmount(text) !== undefined).length).toBeGreaterThan(1_000);
  });

  test('the Redis client fails fast (ioredis 5 option names)', () => {
    expect(FAIL_FAST_OPTIONS).toMatchObject({ maxRetriesPerRequest: 1, enableOfflineQueue: false });
    expect(FAIL_FAST_OPTIONS.connectTimeout).toBeLessThanOrEqual(1000);
    expect(FAIL_FAST_OPTIONS.commandTimeout).toBeLessThanOrEqual(500);
  });

  test('migrations are found beside the bundle, else in the repository', () => {
    expect(resolveMigrationsDir('/opt/m')).toBe('/opt/m');
    expect(resolveMigrationsDir(undefined, path.resolve(__dirname, '../../lambdas/db-migrate'))).toBe(path.resolve(__dirname, '../../db/migrations'));
  });
});
