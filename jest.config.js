/** Jest runs the TypeScript sources directly as ES modules (ts-jest, isolated modules). */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
  },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  // Root tests share one machine's kernel objects only through namespaces they create,
  // but dockerd sandboxes are heavy: run test files one at a time.
  maxWorkers: 1,
  testTimeout: 60000,
};
