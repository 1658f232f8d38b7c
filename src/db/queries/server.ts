import { defineQueries, type NoParams, statement } from "../sql.js";

/** What diagnose() asks of the server itself, from server.sql. */
export const serverQueries = defineQueries("server", {
  Version: statement<NoParams, { server_version: string }>(),
});
