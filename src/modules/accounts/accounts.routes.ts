import type { RequestHandler } from "express";
import type { Api } from "../../http/api";
import { asUser } from "./accounts.policy";
import { PageQuerySchema } from "../../http/schemas";
import { presentOwnUser } from "./accounts.presenters";
import {
  AuthResultSchema,
  LoginBody,
  PrivateUserSchema,
  PublicUserSchema,
  RegisterBody,
  UpdateUserBody,
  UserAsAdminSeesSchema,
  UserPageSchema,
  UsernameParams,
} from "./accounts.schemas";
import type { AccountsService } from "./accounts.service";

const tag = "Accounts";

export function registerAccountsRoutes(api: Api, accounts: AccountsService, credentialLimiter: RequestHandler): void {
  api.tag(tag, "Sign-up, sign-in and sign-out, and user profiles.");
  api.route(
    {
      method: "post", path: "/auth/register", operationId: "register", summary: "Create an account and sign in", tag, auth: "none",
      body: RegisterBody, before: [credentialLimiter],
      responses: { 201: { description: "The new user and a bearer token", schema: AuthResultSchema }, 409: "The username is taken", 429: "Too many attempts" },
    },
    async ({ body, res }) => {
      res.status(201).json(await accounts.register(body));
    },
  );

  api.route(
    {
      method: "post", path: "/auth/login", operationId: "login", summary: "Sign in", tag, auth: "none",
      body: LoginBody, before: [credentialLimiter], password: { field: "password", account: { field: "username" } },
      responses: {
        200: { description: "The user and a bearer token", schema: AuthResultSchema },
        401: "Wrong username or password",
        429: "Too many attempts, or too many wrong passwords from this client or for this account",
      },
    },
    async ({ body, res }) => {
      res.json(await accounts.login(body));
    },
  );

  api.route(
    {
      method: "post", path: "/auth/logout", operationId: "logout", summary: "End the session of the bearer token used", tag, auth: "required",
      responses: { 204: { description: "Signed out; the token no longer works anywhere" } },
    },
    async ({ auth, res }) => {
      await accounts.logout(asUser(auth));
      res.status(204).end();
    },
  );

  api.route(
    {
      method: "get", path: "/users", operationId: "listUsers", summary: "List users", tag, auth: "none", query: PageQuerySchema,
      responses: { 200: { description: "A page of users, by username", schema: UserPageSchema }, 400: "Invalid limit or cursor" },
    },
    async ({ query, res }) => {
      res.json(await accounts.listUsers(query.limit, query.cursor));
    },
  );

  api.route(
    {
      method: "get", path: "/users/me", operationId: "getCurrentUser", summary: "The caller, with private fields", tag, auth: "required",
      responses: { 200: { description: "The caller", schema: PrivateUserSchema } },
    },
    ({ auth, res }) => {
      res.json(presentOwnUser(asUser(auth).user));
    },
  );

  api.route(
    {
      method: "get", path: "/users/:username", operationId: "getUser", summary: "A user's public profile", tag, auth: "none", params: UsernameParams,
      responses: { 200: { description: "The user", schema: PublicUserSchema }, 404: "No such user" },
    },
    async ({ params, res }) => {
      res.json(await accounts.getUser(params.username));
    },
  );

  api.route(
    {
      method: "patch", path: "/users/:username", operationId: "updateUser", summary: "Change your password or mobile token; admins set user_type", tag, auth: "required",
      description:
        "A password change needs current_password and ends all your other sessions; `mobile_token: null` clears it. " +
        "`user_type` may be sent by an admin only, for any account (alone, or with the admin's own fields on their own account); " +
        "409 when it would leave no admin. An admin changing another user sees their public fields and user_type.",
      params: UsernameParams, body: UpdateUserBody, password: { field: "current_password", account: { param: "username" } },
      responses: {
        200: { description: "The updated user", schema: PrivateUserSchema.or(UserAsAdminSeesSchema) },
        400: "Invalid fields, or current_password missing",
        403: "Not this user, current_password wrong, or user_type from a non-admin",
        409: "The change would leave no admin",
        404: "No such user",
      },
    },
    async ({ auth, params, body, res }) => {
      res.json(await accounts.updateUser(asUser(auth), params.username, body));
    },
  );

  api.route(
    {
      method: "delete", path: "/users/:username", operationId: "deleteUser", summary: "Delete your account (admins: any account)", tag, auth: "required",
      description: "Ends all sessions and removes everything the user owns.",
      params: UsernameParams,
      responses: { 204: { description: "Deleted" }, 403: "Not this user and not an admin", 404: "No such user", 409: "The last admin cannot be deleted" },
    },
    async ({ auth, params, res }) => {
      await accounts.deleteUser(asUser(auth), params.username);
      res.status(204).end();
    },
  );
}
