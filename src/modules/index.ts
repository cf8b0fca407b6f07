import type { ModuleDefinition } from "../core/module";
import { accountsModule } from "./accounts";
import { chatModule } from "./chat";
import { lobbyModule } from "./lobby";
import { messagingModule } from "./messaging";
import { pairModule } from "./pair";
import { platformModule } from "./platform";
import { roomsModule } from "./rooms";
import { videosModule } from "./videos";

/** Every module, in start order: a module comes after those it uses. */
export const MODULES: ModuleDefinition[] = [
  platformModule,
  accountsModule,
  messagingModule,
  chatModule,
  lobbyModule,
  pairModule,
  roomsModule,
  videosModule,
];
