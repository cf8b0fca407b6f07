/**
 * The reference of `npm run bench:http`: a plain Express app started as its own process
 * (like the server under test), with one GET and one JSON POST route and nothing else.
 */
import express from "express";

const app = express();
app.get("/", (_req, res) => {
  res.json({ hello: "world" });
});
app.post("/", express.json(), (req, res) => {
  res.status(201).json(req.body);
});
const server = app.listen(Number(process.env.PORT), "127.0.0.1", () => process.send?.("listening"));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
process.on("disconnect", () => process.exit(0));
