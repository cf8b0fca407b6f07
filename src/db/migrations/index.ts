import { Accounts1763700000000 } from "./1763700000000-accounts";
import { Messaging1763700001000 } from "./1763700001000-messaging";
import { PostMessage1763700002000 } from "./1763700002000-post-message";
import { Rooms1763700003000 } from "./1763700003000-rooms";

/** The one ordered set of migrations, applied at start on PGlite and Postgres alike. */
export const migrations = [Accounts1763700000000, Messaging1763700001000, PostMessage1763700002000, Rooms1763700003000];
