import { createServer, type Server, Socket } from "node:net";

/**
 * A TCP proxy a fault test puts between rota and PostgreSQL, so it can take
 * the database away from rota alone (the shared server, and everyone else's
 * connections to it, are never touched):
 *
 * - pass: bytes flow both ways;
 * - cut(): every open connection is closed at once (both sides), as when a
 *   server restarts or a network path resets;
 * - refuse(): new connections are reset as soon as they arrive (counted in
 *   `refused`), as from a host whose server is down;
 * - blackhole(): open connections stay open but every byte either way is
 *   dropped, and new connections are accepted and then hear nothing, as
 *   behind a firewall or NAT that silently lost its state. Connections
 *   blackholed stay dead after restore() (what they sent is lost); only new
 *   ones work again, so rota recovers only if it gives up on the old ones;
 * - restore(): back to pass for new connections.
 */
export interface TcpProxy {
  readonly port: number;
  /** `url` with its host and port replaced by the proxy's. */
  url(url: string): string;
  /** Connections accepted since start (refused ones included). */
  readonly accepted: number;
  /** Connections reset by refuse() since start. */
  readonly refused: number;
  /** Connections open now (forwarded or blackholed). */
  readonly open: number;
  /**
   * The local ports of the proxy's upstream connections now open: the
   * `client_port` PostgreSQL shows for each of them in pg_stat_activity, so a
   * test can pick out its own backends and no one else's.
   */
  upstreamPorts(): number[];
  cut(): void;
  refuse(): void;
  blackhole(): void;
  restore(): void;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket | null;
  dead: boolean;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let mode: "pass" | "refuse" | "blackhole" = "pass";
  let accepted = 0;
  let refused = 0;
  const pairs = new Set<Pair>();

  const kill = (pair: Pair) => {
    pairs.delete(pair);
    pair.client.destroy();
    pair.upstream?.destroy();
  };
  /** Stop forwarding; both sockets stay open and whatever arrives is dropped. */
  const silence = (pair: Pair) => {
    pair.dead = true;
    pair.client.unpipe();
    pair.upstream?.unpipe();
    pair.client.removeAllListeners("data");
    pair.upstream?.removeAllListeners("data");
    pair.client.on("data", () => {});
    pair.upstream?.on("data", () => {});
  };

  // Half-open allowed, so a blackholed connection ignores the client's FIN
  // too (a client that ends one gracefully waits for an answer that never
  // comes); forwarded connections pass the FIN on through pipe().
  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    accepted++;
    client.on("error", () => {});
    if (mode === "refuse") {
      refused++;
      client.resetAndDestroy();
      return;
    }
    const pair: Pair = { client, upstream: null, dead: false };
    pairs.add(pair);
    client.on("close", () => kill(pair));
    if (mode === "blackhole") {
      silence(pair);
      return;
    }
    const upstream = new Socket({ allowHalfOpen: true });
    pair.upstream = upstream;
    upstream.on("error", () => {});
    upstream.on("close", () => {
      if (!pair.dead) kill(pair);
    });
    // Nothing is read from the client until the upstream is there, so no
    // byte is lost on the way (pipe() starts the flow).
    client.pause();
    upstream.connect(target.port, target.host, () => {
      if (pair.dead) return;
      client.pipe(upstream);
      upstream.pipe(client);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;

  return {
    port,
    url(url) {
      const parsed = new URL(url);
      parsed.hostname = "127.0.0.1";
      parsed.port = String(port);
      return parsed.toString();
    },
    get accepted() {
      return accepted;
    },
    get refused() {
      return refused;
    },
    get open() {
      return pairs.size;
    },
    upstreamPorts() {
      const ports: number[] = [];
      for (const pair of pairs) {
        const local = pair.upstream?.localPort;
        if (local !== undefined && !pair.dead) ports.push(local);
      }
      return ports;
    },
    cut() {
      for (const pair of [...pairs]) kill(pair);
    },
    refuse() {
      mode = "refuse";
      for (const pair of [...pairs]) kill(pair);
    },
    blackhole() {
      mode = "blackhole";
      for (const pair of pairs) silence(pair);
    },
    restore() {
      mode = "pass";
    },
    async close() {
      for (const pair of [...pairs]) kill(pair);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The host and port of a postgres:// URL, for startTcpProxy. */
export function targetOf(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname || "127.0.0.1", port: Number(parsed.port || 5432) };
}
