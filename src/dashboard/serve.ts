import { isIP } from "node:net";
import { serve } from "@hono/node-server";
import type { Rota } from "../client.js";
import { RotaError } from "../errors.js";
import { createDashboard, type Dashboard, type DashboardOptions } from "./dashboard.js";

export interface ServeDashboardOptions extends DashboardOptions {
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. Anything but loopback needs `tokens` configured. */
  host?: string;
}

export interface ServedDashboard {
  dashboard: Dashboard;
  /** "http://127.0.0.1:8080" */
  origin: string;
  /** The login link of the first token. */
  loginUrl: string;
  close(): Promise<void>;
}

/**
 * Serves the dashboard over HTTP on Node. Safe by default: without tokens
 * given it generates one and listens on loopback only; it refuses any other
 * host (DASHBOARD_EXPOSED) rather than put a generated token's dashboard on
 * a network.
 */
export async function serveDashboard(
  rota: Rota,
  options: ServeDashboardOptions = {},
): Promise<ServedDashboard> {
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new RotaError(
      "INVALID_OPTION",
      `port must be a whole number from 0 to 65535, got ${port}.`,
      {
        details: { field: "port", value: port },
      },
    );
  }
  if ((options.tokens === undefined || options.tokens.length === 0) && !isLoopback(host)) {
    throw new RotaError(
      "DASHBOARD_EXPOSED",
      `The dashboard listens on ${host} only with a token configured: set ROTA_DASHBOARD_TOKEN (or pass tokens), or listen on 127.0.0.1.`,
      { details: { field: "host", value: host } },
    );
  }
  const dashboard = createDashboard(rota, options);
  const server = serve({ fetch: dashboard.fetch, port, hostname: host });
  const address = await new Promise<{ port: number }>((resolve, reject) => {
    server.once("listening", () => resolve(server.address() as { port: number }));
    server.once("error", (error: Error) =>
      reject(
        new RotaError(
          "INVALID_OPTION",
          `The dashboard cannot listen on ${host}:${port}: ${error.message}.`,
          {
            cause: error,
            details: { field: "port", value: port },
          },
        ),
      ),
    );
  });
  const shown = host.includes(":") ? `[${host}]` : host;
  const origin = `http://${shown}:${address.port}`;
  return {
    dashboard,
    origin,
    loginUrl: dashboard.loginUrl(origin),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Open keep-alive connections (a browser's) must not hold the close.
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      }),
  };
}

/** 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  if (isIP(host) === 6) return host === "::1" || host === "0:0:0:0:0:0:0:1";
  return false;
}
