// rota/prisma: rota's calls that take `client`, inside a Prisma interactive
// transaction (Prisma 7's client without engines, on @prisma/adapter-pg),
// against the real database. The client is generated from
// prisma/schema.prisma before the tests, as an application generates its own.
import { execFile } from "node:child_process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { PrismaPg } from "@prisma/adapter-pg";
import { beforeAll, describe, expect, it } from "vitest";
import { fromPrisma, type PrismaLike } from "../../src/adapters/prisma.js";
import { ormConformance } from "./orm-conformance.js";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/** What these tests use of the generated client (its types exist only once it is generated). */
interface TestPrismaTransaction extends PrismaLike {
  order: { create(args: { data: { note: string } }): Promise<unknown> };
}
interface TestPrismaClient {
  $transaction<T>(
    fn: (tx: TestPrismaTransaction) => Promise<T>,
    options?: { timeout?: number; maxWait?: number },
  ): Promise<T>;
  $disconnect(): Promise<void>;
}
type PrismaClientClass = new (options: { adapter: PrismaPg }) => TestPrismaClient;

let PrismaClient: PrismaClientClass;

beforeAll(async () => {
  // Runs before the suite's own beforeAll (registered first). The schema
  // engine is never needed to generate a client, but the CLI would download
  // it first, and this machine reaches no host but the package registry.
  await promisify(execFile)(
    here("../../node_modules/.bin/prisma"),
    ["generate", "--schema", here("prisma/schema.prisma")],
    { env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: here("prisma/no-schema-engine.sh") } },
  );
  const generated = pathToFileURL(here("prisma/generated/client.ts")).href;
  ({ PrismaClient } = (await import(generated)) as { PrismaClient: PrismaClientClass });
});

const { schema } = ormConformance("Prisma", async ({ url, schema }) => {
  const prisma = new PrismaClient({
    adapter: new PrismaPg({ connectionString: url, max: 2 }, { schema }),
  });
  return {
    transaction: (fn) =>
      prisma.$transaction(
        (tx) =>
          fn({
            client: fromPrisma(tx),
            insertOrder: async (note) => {
              await tx.order.create({ data: { note } });
            },
          }),
        // The machine running the tests may be busy: Prisma's default is 5 s.
        { timeout: 30_000, maxWait: 10_000 },
      ),
    close: () => prisma.$disconnect(),
  };
});

describe("Prisma's int8", () => {
  it("is a BigInt from Prisma itself, so the adapter's conversion to pg's text is needed", async () => {
    const prisma = new PrismaClient({
      adapter: new PrismaPg({ connectionString: schema().url, max: 1 }),
    });
    try {
      const raw = await prisma.$transaction(async (tx) =>
        tx.$queryRawUnsafe<{ n: unknown }[]>("select 9007199254740993::int8 as n"),
      );
      expect(raw[0]?.n).toBe(9007199254740993n);
      const viaAdapter = await prisma.$transaction((tx) =>
        fromPrisma(tx).query({ text: "select 9007199254740993::int8 as n" }),
      );
      expect(viaAdapter).toEqual({ rows: [{ n: "9007199254740993" }], rowCount: null });
    } finally {
      await prisma.$disconnect();
    }
  });
});
