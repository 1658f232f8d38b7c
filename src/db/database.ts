import pg from "pg";
import { DEFAULT_SCHEMA, redactUrl, validateDatabaseUrl, validateSchemaName } from "../config.js";
import { RotaError } from "../errors.js";
import { bindValues, type NamedQuery, type NoParams } from "./sql.js";

/** A statement as rota sends it: its text with `$1`, `$2`, … and their values. */
export interface ExecutorQuery {
  text: string;
  values?: unknown[];
  /** Kept prepared under this name on a pg connection; other executors may ignore it. */
  name?: string;
  /** "extended": one statement only, even without values (runSpliced); pg honours it. */
  queryMode?: "extended";
}

/**
 * What rota reads of a statement's result. Values are as node-postgres
 * returns them by default (int8 and numeric as strings, timestamptz as Date,
 * jsonb parsed); an executor over another driver converts to that (see
 * src/adapters/pg-rows.ts).
 */
export interface ExecutorResult<R extends pg.QueryResultRow = pg.QueryResultRow> {
  rows: R[];
  /** Rows returned or affected; null when the driver does not say (Prisma's raw queries). */
  rowCount: number | null;
}

/**
 * Anything that can run a statement: rota's pool, a client the caller holds
 * (inside the caller's own transaction, so enqueue commits or rolls back with
 * it), or an ORM's transaction through an adapter (rota/kysely, rota/drizzle,
 * rota/knex, rota/prisma).
 */
export interface Executor {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    config: ExecutorQuery,
  ): Promise<ExecutorResult<R>>;
}

export interface DatabaseOptions {
  /** A postgres:// URL, or an existing pool (which rota then never ends). */
  connection: string | pg.Pool;
  /** Schema that holds rota's tables; default "rota". */
  schema?: string;
  /** Pool size when rota creates the pool; default 10. */
  poolSize?: number;
  /** Name shown in pg_stat_activity. */
  applicationName?: string;
  /** End a given pool on close() (for pools rota made itself, as derive() does). */
  endPoolOnClose?: boolean;
}

/** The one seam between rota and node-postgres. */
export class Database {
  readonly schema: string;
  readonly pool: pg.Pool;
  /** Connection settings, so a component can open its own dedicated client (LISTEN). */
  readonly clientConfig: pg.ClientConfig;
  private readonly ownsPool: boolean;
  private ended = false;

  constructor(options: DatabaseOptions) {
    this.schema = validateSchemaName(options.schema ?? DEFAULT_SCHEMA);
    if (typeof options.connection === "string") {
      const url = validateDatabaseUrl(options.connection);
      this.clientConfig = {
        connectionString: url,
        application_name: options.applicationName ?? "rota",
        // rota's statements are short and prepared once; PostgreSQL's JIT
        // would compile the bulk insert for seconds when it sees a large
        // array (its estimate crosses jit_above_cost), so it is off on
        // rota's own connections.
        options: "-c jit=off",
      };
      this.pool = new pg.Pool({ ...this.clientConfig, max: options.poolSize ?? 10 });
      this.ownsPool = true;
    } else {
      this.pool = options.connection;
      this.clientConfig = { ...(options.connection.options as pg.ClientConfig) };
      this.ownsPool = options.endPoolOnClose ?? false;
    }
    // An idle client that dies (database restart) must not crash the process;
    // the pool drops it and the next checkout reconnects.
    this.pool.on("error", () => {});
    // Nor one that dies while rota holds it between two statements (a
    // transaction's; an enqueue's insert and the wake-up after it): the pool
    // listens only to idle clients, and an "error" no one listens to ends
    // the process. The next statement on it fails instead, and a client
    // released after a failure is dropped. (Clients a caller's pool made
    // before rota was given it are the caller's to watch.)
    this.pool.on("connect", (client) => {
      client.on("error", () => {});
    });
  }

  /**
   * A second Database on the same server and schema with its own small pool
   * and extra session settings (`-c name=value` pairs), for a component whose
   * statements need different settings than the caller's (the worker's
   * bookkeeping commits asynchronously).
   */
  derive(options: {
    poolSize: number;
    settings: Record<string, string>;
    applicationName?: string;
  }): Database {
    const extra = Object.entries(options.settings)
      .map(([name, value]) => `-c ${name}=${value}`)
      .join(" ");
    const base = this.clientConfig.options ? `${this.clientConfig.options} ` : "";
    const pool = new pg.Pool({
      ...this.clientConfig,
      application_name: options.applicationName ?? this.clientConfig.application_name,
      options: `${base}-c jit=off ${extra}`.trim(),
      max: options.poolSize,
    });
    return new Database({ connection: pool, schema: this.schema, endPoolOnClose: true });
  }

  /**
   * Runs a named statement with its parameters by name, on the pool or on the
   * caller's executor when given: `db.run(q.Rescue, { limit: 1000 })`. The
   * query module declares both the parameters and the row type.
   */
  run<R extends pg.QueryResultRow>(
    query: NamedQuery<NoParams, R>,
    params?: NoParams,
    executor?: Executor,
  ): Promise<ExecutorResult<R>>;
  run<P extends object, R extends pg.QueryResultRow>(
    query: NamedQuery<P, R>,
    params: NoInfer<P>,
    executor?: Executor,
  ): Promise<ExecutorResult<R>>;
  run(
    query: NamedQuery<never>,
    params: object | undefined,
    executor: Executor = this.pool,
  ): Promise<ExecutorResult> {
    let values: unknown[];
    try {
      values = bindValues(query, params);
    } catch (error) {
      return Promise.reject(error);
    }
    return executor.query(
      query.prepared
        ? { name: query.name, text: query.text, values }
        : { text: query.text, values },
    );
  }

  /**
   * Runs a statement with text spliced in for each `{{name}}` of `fragments`
   * (a schedule's target source, the operator's own query, a capture's
   * quoted names): sent unnamed, since its text is not the same for every
   * call. One pass over the statement, so a fragment's own text is never
   * read for `{{…}}` (a column named "{{table}}" stays a column name).
   */
  runSpliced<P extends object, R extends pg.QueryResultRow>(
    query: NamedQuery<P, R>,
    params: NoInfer<P>,
    fragments: Record<string, string>,
    executor: Executor = this.pool,
  ): Promise<ExecutorResult<R>> {
    let values: unknown[];
    try {
      values = bindValues(query as NamedQuery<never>, params);
    } catch (error) {
      return Promise.reject(error);
    }
    // One pass over the templates, each replaced by a function, so a
    // fragment is never rewritten by another, and "$&", "$$" and the like in
    // it stay as written.
    const text = query.text.replace(/\{\{([A-Za-z_]+)\}\}/g, (template, name: string) =>
      Object.hasOwn(fragments, name) ? (fragments[name] as string) : template,
    );
    // The extended protocol, parameters or not: it runs exactly one
    // statement, so a fragment cannot end this one and start another.
    return executor.query<R>({ text, values, queryMode: "extended" });
  }

  /** Runs `fn` in a transaction on one pooled client: commit on success, roll back on throw. */
  async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.connect();
    try {
      await client.query("begin");
      const result = await fn(client);
      await client.query("commit");
      return result;
    } catch (error) {
      await client.query("rollback").catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  /** A pooled client, with connection failures turned into an actionable error. */
  async connect(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (cause) {
      throw unreachable(this.clientConfig, cause);
    }
  }

  /** A new dedicated client outside the pool (for LISTEN), already connected. */
  async dedicatedClient(): Promise<pg.Client> {
    const client = new pg.Client(this.clientConfig);
    client.on("error", () => {});
    try {
      await client.connect();
    } catch (cause) {
      throw unreachable(this.clientConfig, cause);
    }
    return client;
  }

  async close(): Promise<void> {
    if (this.ended || !this.ownsPool) return;
    this.ended = true;
    await this.pool.end();
  }
}

export function unreachable(config: pg.ClientConfig, cause: unknown): RotaError {
  const target = config.connectionString
    ? redactUrl(config.connectionString)
    : `${config.host ?? "localhost"}:${config.port ?? 5432}`;
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new RotaError(
    "DATABASE_UNREACHABLE",
    `Cannot connect to PostgreSQL at ${target}: ${reason}. Check that the server is running and the URL (--database-url or DATABASE_URL) is right; without a URL, \`rota dev\` starts an embedded PostgreSQL.`,
    { cause, details: { target } },
  );
}
