import type { Executor } from "../db/database.js";
import { pgResult } from "./pg-rows.js";

/**
 * rota/prisma: rota's calls that take `client` (enqueue, enqueueMany,
 * batches.enqueue, cancel, capture.add and remove) run inside a Prisma
 * interactive transaction (PostgreSQL), so the job exists if and only if
 * it commits:
 *
 *   await prisma.$transaction(async (tx) => {
 *     const order = await tx.order.create({ data });
 *     await rota.enqueue("email.receipt", { order: order.id }, { client: fromPrisma(tx) });
 *   });
 */

/** What the adapter needs of a Prisma client or interactive transaction. */
export interface PrismaLike {
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): PromiseLike<T>;
}

/**
 * An executor over `tx`, the client a Prisma interactive transaction hands
 * its callback (or a PrismaClient: then each of rota's statements runs on
 * its own), through `$queryRawUnsafe`, which takes rota's `$n` parameters as
 * they are. Prisma returns int8 as BigInt; pg-rows.ts makes it text, as pg.
 * Prisma does not report how many rows a statement changed: rowCount is null.
 */
export function fromPrisma(tx: PrismaLike): Executor {
  return {
    async query(config) {
      const rows = await tx.$queryRawUnsafe<unknown>(config.text, ...(config.values ?? []));
      return pgResult("Prisma", { rows, rowCount: null });
    },
  };
}
