import { chmodSync, mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { type EmbeddedPostgres, freePort, startEmbeddedPostgres } from "../../src/dev/embedded.js";

/**
 * A PostgreSQL of one test file's own, for tests that stop and restart it
 * (never the suite's database, which the other files share): rota's embedded
 * server, its data in .rota/<name>-pgdata (kept between runs: a test starts
 * from a schema it drops first), on a port picked once, so the URL holds
 * across restarts.
 */
export class OwnServer {
  private constructor(
    private server: EmbeddedPostgres | null,
    private readonly dataDir: string,
    private readonly port: number,
  ) {}

  static async start(name: string): Promise<OwnServer> {
    // As root the server runs as "postgres", which must be let into .rota.
    mkdirSync(".rota", { recursive: true });
    chmodSync(".rota", 0o755);
    const dataDir = resolve(`.rota/${name}-pgdata`);
    const port = await freePort();
    return new OwnServer(await startEmbeddedPostgres({ dataDir, port }), dataDir, port);
  }

  get url(): string {
    return `postgres://postgres:rota@127.0.0.1:${this.port}/postgres`;
  }

  /** Stops the server (a fast shutdown); start() brings it back. */
  async stop(): Promise<void> {
    await this.server?.stop();
    this.server = null;
  }

  /** Starts it again on the same data and port. */
  async start(): Promise<void> {
    this.server ??= await startEmbeddedPostgres({ dataDir: this.dataDir, port: this.port });
  }
}
