import type { TestProject } from "vitest/node";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "../../src/dev/embedded.js";

/**
 * The suite runs against DATABASE_URL when it is set, and otherwise against an
 * embedded PostgreSQL of its own (data in .rota/test-pgdata), so `npm test`
 * works on a machine with no PostgreSQL installed.
 */
let embedded: EmbeddedPostgres | null = null;

export async function setup(project: TestProject): Promise<void> {
  let url = process.env.DATABASE_URL;
  if (!url) {
    embedded = await startEmbeddedPostgres({ dataDir: ".rota/test-pgdata" });
    url = embedded.url;
    process.stderr.write(`tests: using an embedded PostgreSQL on port ${embedded.port}\n`);
  }
  project.provide("databaseUrl", url);
}

export async function teardown(): Promise<void> {
  await embedded?.stop();
}

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string;
  }
}
