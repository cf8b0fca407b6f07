/**
 * The direction of imports (checked in CI: `npm run lint:deps`).
 * - The kernel (core/, db/, http/, realtime/, config.ts, server.ts, app.ts, cluster.ts,
 *   logger.ts) knows no module.
 * - A module uses another only through that module's index.ts.
 * - No cycles.
 */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ["type-only"] } },
    },
    {
      name: "kernel-knows-no-module",
      comment: "core/, db/, http/, realtime/ and the kernel files must not import from modules/.",
      severity: "error",
      from: { path: "^src/(core|db|http|realtime)/|^src/(config|server|app|cluster|logger)\\.ts$" },
      to: { path: "^src/modules/" },
    },
    {
      name: "modules-through-their-index",
      comment: "A module may use another module only through its index.ts.",
      severity: "error",
      from: { path: "^src/modules/([^/]+)/" },
      to: { path: "^src/modules/([^/]+)/.+", pathNot: ["^src/modules/$1/", "^src/modules/[^/]+/index\\.ts$"] },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    exclude: { path: "^(dist|node_modules)/" },
  },
};
