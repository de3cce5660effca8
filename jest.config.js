/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/__tests__'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.(t|j|mj)s$': '<rootDir>/scripts/jest-esbuild-transform.js' },
  // dt-sql-parser ships an ESM build with directory imports; the transform turns it into CommonJS.
  transformIgnorePatterns: ['/node_modules/(?!(dt-sql-parser|antlr4ng|antlr4-c3)/)'],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'json'],
  testTimeout: 120000,
  // One local Kafka broker (java/kafka-broker) for the run; see __tests__/kafka/support.
  globalSetup: '<rootDir>/__tests__/kafka/support/global-setup.ts',
  globalTeardown: '<rootDir>/__tests__/kafka/support/global-teardown.ts',
  maxWorkers: 2,
  reporters: ['default', '<rootDir>/scripts/jest-summary-reporter.js'],
};
