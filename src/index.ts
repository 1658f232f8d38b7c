export { createRota, Rota, type RotaOptions } from "./client.js";
export { type Clock, DatabaseClock, ManualClock, systemClock } from "./clock.js";
export { DEFAULT_SCHEMA } from "./config.js";
export type { Executor } from "./db/database.js";
export { type EmbeddedPostgres, startEmbeddedPostgres } from "./db/embedded.js";
export { LATEST_SCHEMA_VERSION, type SchemaStatus } from "./db/migrate.js";
export { errorCodes, isRotaError, RotaError, type RotaErrorCode } from "./errors.js";
