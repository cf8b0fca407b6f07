// The whole suite runs on the embedded PGlite database, and again on Postgres (with the
// Redis bus when REDIS_URL is set) when DATABASE_URL is set. Tests read the project's
// name from the TEST_DATABASE global.
const swc = [
  "@swc/jest",
  {
    jsc: {
      parser: { syntax: "typescript", decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: "es2022",
    },
    module: { type: "commonjs", ignoreDynamic: true },
  },
];

const project = (name) => ({
  displayName: name,
  globals: { TEST_DATABASE: name },
  testEnvironment: "node",
  transform: { "^.+\\.ts$": swc },
  testMatch: ["<rootDir>/test/**/*.test.ts"],
  modulePathIgnorePatterns: ["<rootDir>/dist/"],
  slowTestThreshold: 30,
});

module.exports = {
  projects: [project("pglite"), ...(process.env.DATABASE_URL ? [project("postgres")] : [])],
  testTimeout: 60_000,
  maxWorkers: process.env.JEST_MAX_WORKERS ?? 2,
};
