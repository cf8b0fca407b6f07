import type { ModuleDefinition } from "../core/module";
import { accountsModule } from "./accounts";
import { chatModule } from "./chat";
import { messagingModule } from "./messaging";
import { platformModule } from "./platform";
import { pairModule } from "./pair";
import { roomsModule } from "./rooms";

/** Every module, in start order: a module comes after those it uses. */
export const MODULES: ModuleDefinition[] = [
  platformModule,
  accountsModule,
  messagingModule,
  chatModule,
  roomsModule,
  pairModule,
];
