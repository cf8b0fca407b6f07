import { defineModule } from "../../core/module";
import { resolveSecret } from "../../core/secrets";
import { messagingModule } from "../messaging";
import { Pair1763700007000 } from "./migrations/1763700007000-pair";
import { registerPairRoutes } from "./pair.routes";
import { PairService } from "./pair.service";
import { pairSocketFace } from "./pair.socket";

const header = (h: Record<string, unknown>) => (typeof h["x-private-id"] === "string" ? (h["x-private-id"] as string) : undefined);

/** Anonymous pair identities (X-Private-Id / auth {privateId}), pair rooms, their messages and signaling. */
export const pairModule = defineModule<PairService>({
  name: "pair",
  migrations: [Pair1763700007000],
  create(kernel, use) {
    const pair = new PairService(kernel.dataSource, use(messagingModule), resolveSecret("pair-secret", null, kernel.config.dataDir));
    return {
      exports: pair,
      streams: [pair.rooms.source],
      authenticators: {
        http: [{ claims: (c) => header(c.headers) !== undefined, authenticate: (c) => pair.authenticate(header(c.headers)!) }],
        socket: [{ claims: (a) => typeof a.privateId === "string", authenticate: (a) => pair.authenticate(a.privateId as string) }],
      },
      routes: (api) => registerPairRoutes(api, pair, kernel, kernel.credentialLimiter),
      socket: pairSocketFace(pair, kernel),
    };
  },
});

export { PAIR_PRINCIPAL } from "./pair.service";
