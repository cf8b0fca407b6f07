import { defineModule } from "../../core/module";
import { registerPlatformRoutes } from "./platform.routes";

/** Liveness, readiness and metrics. */
export const platformModule = defineModule({
  name: "platform",
  create: ({ dataSource, metrics, bus, isDraining }) => ({ routes: (api) => registerPlatformRoutes(api, dataSource, metrics, bus, isDraining) }),
});
