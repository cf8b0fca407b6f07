import type { Api } from "../../http/api";
import { PageQuerySchema } from "../../http/schemas";
import { UsernameParams } from "../accounts";
import { RoomPageSchema } from "./rooms.schemas";
import type { RoomsService } from "./rooms.service";

export function registerRoomsRoutes(api: Api, rooms: RoomsService): void {
  api.route(
    {
      method: "get", path: "/users/:username/rooms", summary: "The conference rooms a user is in", tags: ["Accounts", "Conference rooms"], auth: "none",
      params: UsernameParams, query: PageQuerySchema,
      responses: { 200: { description: "A page of rooms, in the order the user joined them", schema: RoomPageSchema }, 400: "Invalid limit or cursor", 404: "No such user" },
    },
    async ({ params, query, res }) => {
      res.json(await rooms.roomsOf(params.username, query.limit, query.cursor));
    },
  );
}
