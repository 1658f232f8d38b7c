import pg from "pg";
import {
  DEFAULT_SCHEMA,
  redactUrl,
  validateDatabaseUrl,
  validateMillis,
  validateSchemaName,
} from "../config.js";
import { RotaError } from "../errors.js";
import { bindValues, type NamedQuery, type NoParams } from "./sql.js";
import { isConnectionLoss } from "./sqlstate.js";

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

/** How rota connects (see docs/connections.md); part of RotaOptions. */
export interface ConnectionOptions {
  /**
   * Give up making a connection (TCP connect, TLS, authentication) after
   * this many ms; 0 waits for ever. Default 10 s. A database that silently
   * drops packets would otherwise hold a new connection, and whatever waits
   * for it, for good. It bounds making a connection only, not waiting for a
   * free one of a busy pool.
   */
  connectTimeoutMs?: number;
  /**
   * `connection` goes through a pooler in transaction mode (PgBouncer's
   * `pool_mode = transaction`), which hands each transaction to whichever
   * server connection is free: rota then sends every statement unnamed (a
   * named prepared statement would exist on one server connection only)
   * and no session settings when it connects (PgBouncer refuses the
   * `options` startup parameter), and a worker's LISTEN needs
   * `listenConnection`. Default false.
   */
  transactionPooler?: boolean;
  /**
   * A postgres:// URL straight to PostgreSQL (not through a transaction
   * pooler) for the workers' LISTEN connections: one session connection
   * per worker. Default: `connection`.
   */
  listenConnection?: string;
}

export interface DatabaseOptions extends ConnectionOptions {
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

/**
 * TCP keepalive probes on rota's connections start after this much silence,
 * so the kernel notices a peer that vanished (a host gone, not one that
 * closed its side) on idle pooled and LISTEN connections. Node sets only
 * this idle time; how often the probes repeat is the system's, so the
 * bound rota relies on is its own timeouts (docs/connections.md).
 */
const KEEPALIVE_IDLE_MS = 10_000;

/** Whether the statements run on a Database's own pool lately reached the server (see Database.reachability). */
export interface Reachability {
  /** When the last answer came, rows or an error of the server's (null: none yet). */
  lastAnswerAt: Date | null;
  /** The last connection failure, and when (null: none yet). */
  lastLoss: { error: unknown; at: Date } | null;
}

/**
 * A caller's pool, or a typed error naming what came instead: a JavaScript
 * caller's `connection: process.env.DATABASE_URL` with the variable unset
 * would otherwise fail deep in node-postgres.
 */
function validatePool(connection: unknown): pg.Pool {
  const looksLikePool =
    typeof connection === "object" &&
    connection !== null &&
    typeof (connection as pg.Pool).connect === "function" &&
    typeof (connection as pg.Pool).query === "function";
  if (looksLikePool) return connection as pg.Pool;
  const type = typeof connection;
  const got =
    connection === undefined || connection === null
      ? "nothing"
      : `${/^[aeiou]/.test(type) ? "an" : "a"} ${type}`;
  throw new RotaError(
    "INVALID_OPTION",
    `connection was ${got}: give a PostgreSQL URL (postgres://user@host:5432/database) or a pg.Pool. ` +
      "(rota reads no environment variable itself: pass process.env.DATABASE_URL, and check that it is set.)",
    { details: { field: "connection", got } },
  );
}

/** The one seam between rota and node-postgres. */
export class Database {
  readonly schema: string;
  readonly pool: pg.Pool;
  /** Connection settings, so a component can open its own dedicated client (LISTEN). */
  readonly clientConfig: pg.ClientConfig;
  /** See ConnectionOptions.transactionPooler. */
  readonly transactionPooler: boolean;
  /** The direct URL for LISTEN connections, when not `connection` (ConnectionOptions.listenConnection). */
  readonly listenUrl: string | null;
  /** See ConnectionOptions.connectTimeoutMs (0: none). */
  readonly connectTimeoutMs: number;
  private readonly ownsPool: boolean;
  private ended = false;
  private lastAnswer: Date | null = null;
  private lastLoss: { error: unknown; at: Date } | null = null;

  constructor(options: DatabaseOptions) {
    this.schema = validateSchemaName(options.schema ?? DEFAULT_SCHEMA);
    this.connectTimeoutMs = validateMillis("connectTimeoutMs", options.connectTimeoutMs ?? 10_000);
    this.transactionPooler = options.transactionPooler ?? false;
    this.listenUrl =
      options.listenConnection === undefined
        ? null
        : validateDatabaseUrl(options.listenConnection, "listenConnection");
    if (typeof options.connection === "string") {
      const url = validateDatabaseUrl(options.connection);
      this.clientConfig = {
        connectionString: url,
        application_name: options.applicationName ?? "rota",
        keepAlive: true,
        keepAliveInitialDelayMillis: KEEPALIVE_IDLE_MS,
        // rota's statements are short and prepared once; PostgreSQL's JIT
        // would compile the bulk insert for seconds when it sees a large
        // array (its estimate crosses jit_above_cost), so it is off on
        // rota's own connections. Not through a transaction pooler, which
        // refuses session settings at connect (docs/connections.md).
        ...(this.transactionPooler ? {} : { options: "-c jit=off" }),
      };
      this.pool = new pg.Pool({
        ...this.clientConfig,
        Client: clientTimingOut(pg.Client, this.connectTimeoutMs),
        max: options.poolSize ?? 10,
      });
      this.ownsPool = true;
    } else {
      this.pool = validatePool(options.connection);
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
   * What the statements run on this Database's own pool (not on a caller's
   * client) last found: an answer from the server, or no connection. A
   * worker's health reads its connections' (Worker.health).
   */
  get reachability(): Reachability {
    return { lastAnswerAt: this.lastAnswer, lastLoss: this.lastLoss };
  }

  /**
   * Notes whether a statement on the own pool reached the server, and
   * passes its outcome on, pg's timeouts said as rota's errors.
   */
  private noted<T>(result: Promise<T>, executor: Executor): Promise<T> {
    return result.then(
      (value) => {
        if (executor === this.pool) this.lastAnswer = new Date();
        return value;
      },
      (thrown: unknown) => {
        const error = this.timeoutSaid(thrown);
        if (executor === this.pool) {
          if (isConnectionLoss(error)) this.lastLoss = { error, at: new Date() };
          else this.lastAnswer = new Date();
        }
        throw error;
      },
    );
  }

  /** pg's "Query read timeout" and a connection that timed out, as QUERY_TIMEOUT and DATABASE_UNREACHABLE. */
  private timeoutSaid(error: unknown): unknown {
    if (!(error instanceof Error) || error instanceof pg.DatabaseError) return error;
    if (error.message === "Query read timeout") {
      const ms = (this.clientConfig as { query_timeout?: number }).query_timeout;
      return new RotaError(
        "QUERY_TIMEOUT",
        `PostgreSQL did not answer a statement within ${ms ?? "?"} ms (queryTimeoutMs): the connection went silent, or the statement ran that long. It was given up and its connection dropped.`,
        { cause: error, details: { timeoutMs: ms } },
      );
    }
    if (/timeout expired|connection timeout/.test(error.message))
      return unreachable(this.clientConfig, error, this.connectTimeoutMs);
    return error;
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
    /**
     * Give up on a statement after this many ms without an answer (0:
     * never): a client-side timeout, so it also ends a statement whose
     * connection went silent, and the pool then drops that connection.
     * For components that must go on (workers, orchestrators) whatever the
     * network does; see docs/connections.md.
     */
    queryTimeoutMs?: number;
  }): Database {
    const extra = Object.entries(options.settings)
      .map(([name, value]) => `-c ${name}=${value}`)
      .join(" ");
    const base = this.clientConfig.options ? `${this.clientConfig.options} ` : "";
    const config: pg.PoolConfig = {
      ...this.clientConfig,
      application_name: options.applicationName ?? this.clientConfig.application_name,
      // Through a transaction pooler the settings cannot be sent: they are
      // left to the server's (or the role's) configuration.
      options: this.transactionPooler
        ? this.clientConfig.options
        : `${base}-c jit=off ${extra}`.trim(),
      Client: clientTimingOut(
        ((this.clientConfig as pg.PoolConfig).Client as typeof pg.Client | undefined) ?? pg.Client,
        this.connectTimeoutMs,
      ),
      max: options.poolSize,
    };
    if (options.queryTimeoutMs) config.query_timeout = options.queryTimeoutMs;
    return new Database({
      connection: new pg.Pool(config),
      schema: this.schema,
      endPoolOnClose: true,
      connectTimeoutMs: this.connectTimeoutMs,
      transactionPooler: this.transactionPooler,
      ...(this.listenUrl === null ? {} : { listenConnection: this.listenUrl }),
    });
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
    // Through a transaction pooler no statement is named: the next one may
    // go to a server connection where that name was never prepared.
    const prepared = query.prepared && !this.transactionPooler;
    return this.noted(
      executor.query(
        prepared ? { name: query.name, text: query.text, values } : { text: query.text, values },
      ),
      executor,
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
    return this.noted(executor.query<R>({ text, values, queryMode: "extended" }), executor);
  }

  /** Runs `fn` in a transaction on one pooled client: commit on success, roll back on throw. */
  async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.connect();
    let broken: Error | undefined;
    try {
      await client.query("begin");
      const result = await fn(client);
      await client.query("commit");
      return result;
    } catch (error) {
      // A rollback that fails leaves the client in no known state (a
      // statement that timed out is still the connection's, unanswered):
      // it is dropped, not pooled for the next caller to find broken.
      await client.query("rollback").catch((rollbackError: Error) => {
        broken = rollbackError;
      });
      throw error;
    } finally {
      client.release(broken);
    }
  }

  /** A pooled client, with connection failures turned into an actionable error. */
  async connect(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (cause) {
      throw unreachable(this.clientConfig, cause, this.connectTimeoutMs);
    }
  }

  /**
   * A new dedicated client outside the pool (for LISTEN), already connected:
   * to `listenConnection` when one was given, since a session's LISTEN does
   * not survive a transaction pooler.
   */
  async dedicatedClient(): Promise<pg.Client> {
    const config: pg.ClientConfig = {
      ...this.clientConfig,
      ...(this.listenUrl === null ? {} : { connectionString: this.listenUrl }),
      connectionTimeoutMillis: this.connectTimeoutMs,
    };
    const client = new pg.Client(config);
    client.on("error", () => {});
    try {
      await client.connect();
    } catch (cause) {
      throw unreachable(config, cause, this.connectTimeoutMs);
    }
    return client;
  }

  async close(): Promise<void> {
    if (this.ended || !this.ownsPool) return;
    this.ended = true;
    await this.pool.end();
  }
}

/**
 * Ends a client of dedicatedClient(): politely (a Terminate message, then
 * the server closes) when the server answers within `ms`, else by closing
 * its socket, since a peer gone silent never answers the goodbye.
 */
export async function endClient(client: pg.Client, ms: number): Promise<void> {
  const ended = client.end().then(
    () => true,
    () => true,
  );
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const polite = await Promise.race([ended, late]);
  clearTimeout(timer);
  if (!polite) client.connection.stream.destroy();
}

export function unreachable(
  config: pg.ClientConfig,
  cause: unknown,
  connectTimeoutMs = 0,
): RotaError {
  const target = config.connectionString
    ? redactUrl(config.connectionString)
    : `${config.host ?? "localhost"}:${config.port ?? 5432}`;
  let reason = cause instanceof Error ? cause.message : String(cause);
  // pg says "timeout expired" or "Connection terminated due to connection
  // timeout": what happened is that nothing answered.
  if (connectTimeoutMs > 0 && /timeout/i.test(reason))
    reason = `no answer within ${connectTimeoutMs} ms (connectTimeoutMs)`;
  return new RotaError(
    "DATABASE_UNREACHABLE",
    `Cannot connect to PostgreSQL at ${target}: ${reason}. Check that the server is running and the URL (--database-url or DATABASE_URL) is right; without a URL, \`rota dev\` starts an embedded PostgreSQL.`,
    { cause, details: { target } },
  );
}

/**
 * A pg.Client class that gives up connecting after `ms` (0: never). Given to
 * a pool as its Client rather than setting the pool's own
 * connectionTimeoutMillis, which would also fail a caller that waits that
 * long for a free connection of a busy pool.
 */
function clientTimingOut(base: typeof pg.Client, ms: number): typeof pg.Client {
  if (ms === 0) return base;
  return class extends base {
    constructor(config?: string | pg.ClientConfig) {
      super(
        typeof config === "string"
          ? { connectionString: config, connectionTimeoutMillis: ms }
          : { ...config, connectionTimeoutMillis: ms },
      );
    }
  };
}
