import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { type Context, Hono } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import type { Rota } from "../client.js";
import { describeThrown, isRotaError, RotaError } from "../errors.js";
import type { Logger } from "../logger.js";
import { Access, type DashboardToken, generateToken, TOKEN_COOKIE } from "./access.js";
import { ACTIONS } from "./actions.js";
import type { Html, View } from "./layout.js";
import { jobPage } from "./pages/job.js";
import { type JobsQuery, jobsPage } from "./pages/jobs.js";
import { overviewPage } from "./pages/overview.js";
import { schedulePage, schedulesPage } from "./pages/schedules.js";

export type { DashboardToken } from "./access.js";

export interface DashboardOptions {
  /**
   * Who may use it. Default: one token generated now, named "generated"
   * (read it from `dashboard.tokens` to print a login link).
   */
  tokens?: DashboardToken[];
  /** Every token sees and nobody changes anything. Default false. */
  readOnly?: boolean;
  /** Where the handler is mounted in the user's server ("/rota"); default "" (the root). */
  basePath?: string;
  /** How often pages refresh their figures in place; default 5,000 ms, 0 never. */
  refreshMs?: number;
  /** Where each action is logged (besides the dashboard:action event); default the Rota's logger. */
  logger?: Logger;
}

/** A dashboard: a standard fetch handler (Hono, Express via an adapter, Fastify, Bun, Deno…). */
export interface Dashboard {
  fetch(request: Request): Promise<Response>;
  /** The tokens it accepts (with the generated one when none was given). */
  readonly tokens: readonly DashboardToken[];
  /** A link that logs in with `token` (sets the cookie), on `origin` ("http://127.0.0.1:8080"). */
  loginUrl(origin: string, token?: DashboardToken): string;
}

/**
 * What every answer carries: no inline script or style, no framing, no
 * referrer to other sites (a login link's token must not leak: it is
 * redirected away at once anyway), nothing cached.
 */
const SECURITY_HEADERS: Record<string, string> = {
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  // Not no-referrer: with it a browser sends `Origin: null` on the
  // dashboard's own form posts, and the origin check could not tell them
  // from another site's.
  "Referrer-Policy": "same-origin",
  "Cache-Control": "no-store",
};

type Env = { Variables: { holder: DashboardToken } };

/**
 * rota's web dashboard, over rota's library API only. Every request needs
 * a token (a Bearer header, or the cookie a login link `?token=` sets);
 * state changes are POSTs with the CSRF token of the holder's forms, from
 * this origin, and are refused in read-only mode.
 */
export function createDashboard(rota: Rota, options: DashboardOptions = {}): Dashboard {
  const tokens = options.tokens ?? [{ name: "generated", token: generateToken() }];
  const access = new Access(tokens);
  const base = normalizeBase(options.basePath ?? "");
  const refreshMs = options.refreshMs ?? 5_000;
  const logger = options.logger ?? rota.logger;
  const app = new Hono<Env>();

  app.use("*", async (c, next) => {
    await next();
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) c.res.headers.set(name, value);
  });

  // Who asks: a Bearer token or the cookie; a login link sets the cookie.
  app.use("*", async (c, next) => {
    const url = new URL(c.req.url);
    const linked = url.searchParams.get("token");
    if (linked !== null && c.req.method === "GET") {
      const holder = access.holder(linked);
      if (!holder) return refuse(c, 401, "This login link's token is not valid.");
      setCookie(c, TOKEN_COOKIE, holder.token, {
        httpOnly: true,
        sameSite: "Strict",
        path: base === "" ? "/" : `${base}/`,
        secure: url.protocol === "https:",
      });
      url.searchParams.delete("token");
      return c.redirect(`${url.pathname}${url.search}`, 303);
    }
    const header = c.req.header("authorization");
    const bearer = header?.startsWith("Bearer ") ? header.slice(7) : undefined;
    const holder = access.holder(bearer ?? getCookie(c, TOKEN_COOKIE));
    if (!holder) {
      c.header("WWW-Authenticate", 'Bearer realm="rota dashboard"');
      return refuse(
        c,
        401,
        "A dashboard token is needed: open the login link printed when the dashboard started, or send Authorization: Bearer <token>.",
      );
    }
    c.set("holder", holder);
    await next();
  });

  const view = (c: Context<Env>): View => {
    const holder = c.get("holder");
    const url = new URL(c.req.url);
    const done = url.searchParams.get("done");
    const failed = url.searchParams.get("failed");
    url.searchParams.delete("done");
    url.searchParams.delete("failed");
    return {
      base,
      actor: holder.name,
      readOnly: options.readOnly === true || holder.readOnly === true,
      csrf: access.csrfFor(holder),
      here: `${url.pathname}${url.search}`,
      notice: failed ?? done,
      noticeKind: failed !== null ? "failed" : "done",
      refreshMs,
    };
  };
  const render = async (c: Context<Env>, content: Promise<Html | null>) => {
    const shown = await content;
    return shown === null ? refuse(c, 404, "Not found.") : c.html(await shown);
  };

  const routes = new Hono<Env>();
  routes.get("/", (c) => render(c, overviewPage(rota, view(c))));
  routes.get("/jobs/", (c) => render(c, jobsPage(rota, view(c), c.req.query() as JobsQuery)));
  routes.get("/jobs", (c) => c.redirect(`${base}/jobs/`, 301));
  routes.get("/jobs/:id", (c) => render(c, jobPage(rota, view(c), c.req.param("id"))));
  routes.get("/schedules/", (c) => render(c, schedulesPage(rota, view(c))));
  routes.get("/schedules", (c) => c.redirect(`${base}/schedules/`, 301));
  routes.get("/schedules/:name{.+}", (c) =>
    render(
      c,
      schedulePage(rota, view(c), decodeURIComponent(c.req.param("name")), c.req.query("target")),
    ),
  );
  routes.get("/assets/:file", (c) => asset(c, c.req.param("file")));

  routes.post("/actions/:area/:verb", (c) => act(c, c.req.param("area"), "", c.req.param("verb")));
  routes.post("/actions/:area/:target/:verb", (c) =>
    act(c, c.req.param("area"), decodeURIComponent(c.req.param("target")), c.req.param("verb")),
  );

  async function act(c: Context<Env>, area: string, target: string, verb: string) {
    const holder = c.get("holder");
    const action = ACTIONS[`${area}/${verb}`];
    if (!action) return refuse(c, 404, "No such action.");
    if (options.readOnly === true || holder.readOnly === true) {
      return refuse(c, 403, "This dashboard is read-only for this token: nothing was changed.");
    }
    const origin = c.req.header("origin");
    if (origin !== undefined && origin !== new URL(c.req.url).origin) {
      return refuse(c, 403, "The request came from another site: nothing was changed.");
    }
    const form = await formOf(c);
    if (!access.csrfValid(holder, form._csrf)) {
      return refuse(
        c,
        403,
        "The form's CSRF token is missing or stale (reload the page): nothing was changed.",
      );
    }
    const back = safeBack(form.back, base);
    let ok = true;
    let result: string;
    try {
      result = await action.perform(rota, target, form);
    } catch (error) {
      if (!isRotaError(error)) throw error;
      ok = false;
      result = error.message;
    }
    rota.events.emit("dashboard:action", {
      actor: holder.name,
      action: action.name,
      target,
      ok,
      result,
    });
    logger.info(
      { actor: holder.name, action: action.name, target, ok },
      `dashboard ${action.name} by ${holder.name}: ${result}`,
    );
    const url = new URL(back, "http://dashboard.invalid");
    url.searchParams.set(ok ? "done" : "failed", result);
    return c.redirect(`${url.pathname}${url.search}`, 303);
  }

  routes.notFound((c) => refuse(c, 404, "Not found."));
  app.route(base === "" ? "/" : base, routes);
  app.notFound((c) => refuse(c, 404, "Not found."));
  app.onError((error, c) => {
    const path = new URL(c.req.url).pathname;
    logger.error(
      { method: c.req.method, path, error: describeThrown(error).message },
      `dashboard ${c.req.method} ${path} failed`,
    );
    return refuse(c, 500, "The dashboard could not answer: see the server's log.");
  });

  return {
    fetch: async (request) => app.fetch(request),
    tokens,
    loginUrl: (origin, token = tokens[0] as DashboardToken) =>
      `${origin}${base}/?token=${encodeURIComponent(token.token)}`,
  };
}

/** A plain-text refusal (no page, nothing from the request echoed). */
function refuse(c: Context, status: 401 | 403 | 404 | 500, message: string) {
  return c.text(message, status);
}

async function formOf(c: Context): Promise<Record<string, string>> {
  const body = await c.req.parseBody().catch(() => ({}));
  const form: Record<string, string> = {};
  for (const [key, value] of Object.entries(body)) if (typeof value === "string") form[key] = value;
  return form;
}

/** Where an action returns: a path of this dashboard, never another site. */
function safeBack(back: string | undefined, base: string): string {
  if (back === undefined || !back.startsWith(`${base}/`) || back.startsWith("//"))
    return `${base}/`;
  return back;
}

function normalizeBase(basePath: string): string {
  if (basePath === "" || basePath === "/") return "";
  if (!/^\/[A-Za-z0-9._~\-/]*[^/]$/.test(basePath)) {
    throw new RotaError(
      "INVALID_OPTION",
      `basePath must be a path such as "/rota" (no trailing slash), got ${JSON.stringify(basePath)}.`,
      { details: { field: "basePath", value: basePath } },
    );
  }
  return basePath;
}

const require = createRequire(import.meta.url);

/** The static files: the dashboard's own, and uPlot's from its package. */
const ASSETS: Record<string, { path: () => string; type: string }> = {
  "dashboard.js": {
    path: () => new URL("./public/dashboard.js", import.meta.url).pathname,
    type: "text/javascript; charset=utf-8",
  },
  "dashboard.css": {
    path: () => new URL("./public/dashboard.css", import.meta.url).pathname,
    type: "text/css; charset=utf-8",
  },
  "uplot.js": {
    path: () => require.resolve("uplot/dist/uPlot.iife.min.js"),
    type: "text/javascript; charset=utf-8",
  },
  "uplot.css": {
    path: () => require.resolve("uplot/dist/uPlot.min.css"),
    type: "text/css; charset=utf-8",
  },
};
const assetCache = new Map<string, Buffer>();

async function asset(c: Context, file: string) {
  const known = ASSETS[file];
  if (!known) return refuse(c, 404, "Not found.");
  let body = assetCache.get(file);
  if (body === undefined) {
    body = await readFile(known.path());
    assetCache.set(file, body);
  }
  return c.body(new Uint8Array(body), 200, { "Content-Type": known.type });
}
