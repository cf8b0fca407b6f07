import type { Credentials } from "../../http/auth-context";
import { defineModule } from "../../core/module";
import { resolveSecret } from "../../core/secrets";
import { messagingModule } from "../messaging";
import { Pair1763700007000 } from "./migrations/1763700007000-pair";
import { registerPairRoutes } from "./pair.routes";
import { PAIR_PRINCIPAL, PairService } from "./pair.service";
import { PairFollowers, pairSocketFace } from "./pair.socket";

/** API.md: the privateId travels in header X-Private-Id or as body field `privateId` (the header wins). */
function privateIdOf({ headers, body }: Credentials): string | undefined {
  const header = headers["x-private-id"];
  if (typeof header === "string") return header;
  const field = typeof body === "object" && body !== null ? (body as Record<string, unknown>).privateId : undefined;
  return typeof field === "string" ? field : undefined;
}

/** Anonymous pair identities (X-Private-Id, body privateId, auth {privateId}), pair rooms, their messages and signaling. */
export const pairModule = defineModule<PairService>({
  name: "pair",
  migrations: [Pair1763700007000],
  create(kernel, use) {
    const pair = new PairService(kernel.dataSource, use(messagingModule), resolveSecret("pair-secret", null, kernel.config.dataDir));
    const followers = new PairFollowers(pair, kernel);
    kernel.connections.addCheck(PAIR_PRINCIPAL, (principals) => pair.standings(principals));
    return {
      exports: pair,
      streams: [pair.rooms.source],
      authenticators: {
        http: [{ claims: (c) => privateIdOf(c) !== undefined, authenticate: (c) => pair.authenticate(privateIdOf(c)!) }],
        socket: [{ claims: (a) => typeof a.privateId === "string", authenticate: (a) => pair.authenticate(a.privateId as string) }],
      },
      routes: (api) => registerPairRoutes(api, pair, followers, kernel, kernel.credentialLimiter),
      socket: pairSocketFace(pair, kernel, followers),
      start: () => followers.start(),
    };
  },
});

export { PAIR_PRINCIPAL, asPair } from "./pair.service";
