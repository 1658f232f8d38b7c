import { fileURLToPath } from "node:url";
import pg from "pg";

export interface BenchDatabase {
  url: string;
  /** How it was chosen, for the report: the URL itself may hold a password. */
  source: "DATABASE_URL" | "embedded";
  stop(): Promise<void>;
}

const REPO_ROOT = fileURLToPath(new URL("../", import.meta.url));

/**
 * The PostgreSQL both benchmarks measure on: `url` (--database-url or
 * DATABASE_URL) when given, else rota's embedded PostgreSQL with its data in
 * .rota/bench-pgdata (started here, stopped by `stop()`).
 */
export async function openDatabase(
  url: string | undefined,
  log: (line: string) => void,
): Promise<BenchDatabase> {
  if (url) return { url, source: "DATABASE_URL", stop: async () => {} };
  log("no database URL: starting the embedded PostgreSQL (data in .rota/bench-pgdata)");
  const { startEmbeddedPostgres } = await import("../src/dev/embedded.js");
  const server = await startEmbeddedPostgres({ dataDir: `${REPO_ROOT}.rota/bench-pgdata` });
  return { url: server.url, source: "embedded", stop: () => server.stop() };
}

export async function serverVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const result = await client.query<{ server_version: string }>("show server_version");
    return result.rows[0]?.server_version ?? "unknown";
  } finally {
    await client.end();
  }
}
