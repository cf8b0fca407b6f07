import { DomainError } from "../../core/errors";
import type { Principal } from "../../core/principal";
import type { Api } from "../../http/api";
import type { ProblemPresenter } from "../../http/error-handler";
import { z } from "../../http/zod";
import { asUser, isAdmin } from "../accounts";
import { AddTableBody, EventSchema, INVALID_MESSAGE, NOT_AUTHENTICATED, NOT_AUTHORIZED, TableListSchema, UpdateTableBody } from "./lobby.protocol";
import { LobbyFailure, type LobbyService } from "./lobby.service";

const tag = "Lobby";
const IdParams = z.object({ id: z.string() });

/** Failures as the lobby's `$type` bodies, with the status that says why. */
export const presentLobbyError: ProblemPresenter = (problem, error) => {
  if (error instanceof LobbyFailure) return { status: error.status, body: error.body };
  if (problem.status === 401) return { status: 401, body: NOT_AUTHENTICATED };
  if (problem.status === 403) return { status: 403, body: NOT_AUTHORIZED };
  if ([400, 404, 413, 415].includes(problem.status)) return { status: problem.status === 404 ? 400 : problem.status, body: INVALID_MESSAGE };
  return null;
};

function requireAdmin(auth: Principal): void {
  asUser(auth);
  if (!isAdmin(auth)) throw new DomainError(403, "Only an admin may change the lobby.");
}

function tableId(raw: string): number {
  if (!/^[0-9]{1,10}$/.test(raw)) throw new DomainError(400, "A table id is a positive integer.");
  return Number(raw);
}

// The lobby answers its failures as protocol bodies (application/json), not problem+json.
const LobbyFailureSchema = z
  .object({ $type: z.string(), id: z.number().int().optional(), after_id: z.number().int().optional() })
  .openapi("LobbyFailure", { description: "A lobby protocol failure; `$type` says which (`invalid_message`, `not_authenticated`, `not_authorized`, `addition_failed`, `update_failed`, `removal_failed`)" });
const failure = (description: string) => ({ description, schema: LobbyFailureSchema });
const failures = { 400: failure("invalid_message"), 401: failure("not_authenticated (WWW-Authenticate: Basic)"), 403: failure("not_authorized") };
const bodyFailures = { 413: failure("invalid_message: the body is larger than MAX_BODY_BYTES"), 415: failure("invalid_message: the body is not application/json") };

export function registerLobbyRoutes(api: Api, lobby: LobbyService): void {
  api.tag(tag, "The lobby's ordered table list over REST (the `/lobby_api` protocol; its WebSocket is at `/lobby_api`). Failures are the protocol's `$type` bodies.");
  const presentError = presentLobbyError;
  api.route(
    { method: "get", path: "/lobby_api/health", operationId: "getLobbyHealth", summary: "Lobby liveness", tag, auth: "none", responses: { 200: { description: "Alive", schema: z.object({ status: z.literal("ok") }) } } },
    ({ res }) => {
      res.json({ status: "ok" });
    },
  );

  api.route(
    {
      method: "get", path: "/lobby_api/tables", operationId: "listLobbyTables", summary: "The lobby's tables, in order", tag, auth: "required", presentError,
      responses: { 200: { description: "table_list", schema: TableListSchema }, ...failures },
    },
    async ({ auth, res }) => {
      asUser(auth);
      res.json(await lobby.list());
    },
  );

  api.route(
    {
      method: "post", path: "/lobby_api/tables", operationId: "addLobbyTable", summary: "Add a table after `after_id` (-1: first)", tag, auth: "required", presentError, body: AddTableBody,
      responses: { 201: { description: "table_added", schema: EventSchema }, 409: failure("addition_failed"), ...failures, ...bodyFailures },
    },
    async ({ auth, body, res }) => {
      requireAdmin(auth);
      res.status(201).json(await lobby.add(body.after_id, body.table));
    },
  );

  api.route(
    {
      method: "put", path: "/lobby_api/tables/:id", operationId: "updateLobbyTable", summary: "Change a table", tag, auth: "required", presentError, params: IdParams, body: UpdateTableBody,
      responses: { 200: { description: "table_updated", schema: EventSchema }, 404: failure("update_failed"), ...failures, ...bodyFailures },
    },
    async ({ auth, params, body, res }) => {
      requireAdmin(auth);
      const id = tableId(params.id);
      if (body.table.id !== undefined && body.table.id !== id) throw new DomainError(400, "The body's table id is not the path's.");
      res.json(await lobby.update({ ...body.table, id }));
    },
  );

  api.route(
    {
      method: "delete", path: "/lobby_api/tables/:id", operationId: "removeLobbyTable", summary: "Remove a table", tag, auth: "required", presentError, params: IdParams,
      responses: { 200: { description: "table_removed", schema: EventSchema }, 404: failure("removal_failed"), ...failures },
    },
    async ({ auth, params, res }) => {
      requireAdmin(auth);
      res.json(await lobby.remove(tableId(params.id)));
    },
  );
}
