// The dashboard's safety without a browser: every request needs a token,
// state changes need the form's CSRF token and a write-capable token, values
// from the database are escaped, and a generated token never leaves loopback.
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDashboard, type Dashboard } from "../../src/dashboard/dashboard.js";
import { serveDashboard } from "../../src/dashboard/serve.js";
import { silentLogger } from "../../src/logger.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";

let t: TestSchema;
let dashboard: Dashboard;
const OPERATOR = { name: "alice", token: "alice-token-0123456789" };
const VIEWER = { name: "bob", token: "bob-token-0123456789ab", readOnly: true };
const ORIGIN = "http://dash.test";

beforeAll(async () => {
  t = await migratedSchema();
  dashboard = createDashboard(t.rota, { tokens: [OPERATOR, VIEWER], logger: silentLogger });
});
afterAll(() => t.drop());

function get(path: string, token?: string, headers: Record<string, string> = {}) {
  return dashboard.fetch(
    new Request(`${ORIGIN}${path}`, {
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    }),
  );
}

function post(path: string, form: Record<string, string>, token: string, origin = ORIGIN) {
  return dashboard.fetch(
    new Request(`${ORIGIN}${path}`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/x-www-form-urlencoded",
        origin,
      },
      body: new URLSearchParams(form).toString(),
    }),
  );
}

/** The CSRF token the page's forms carry for this token's holder. */
async function csrfOf(token: string, path: string): Promise<string> {
  const body = await (await get(path, token)).text();
  const match = /name="_csrf" value="([^"]+)"/.exec(body);
  if (!match?.[1]) throw new Error(`no CSRF token on ${path}`);
  return match[1];
}

describe("dashboard access", () => {
  it("refuses every request without a valid token with 401, assets included", async () => {
    for (const path of ["/", "/jobs/", "/schedules/", "/assets/dashboard.js", "/nowhere"]) {
      const response = await get(path);
      expect(response.status, path).toBe(401);
      expect(response.headers.get("www-authenticate")).toContain("Bearer");
    }
    expect((await get("/jobs/", "not-the-token-at-all")).status).toBe(401);
    expect((await get("/?token=wrong-token-0123456789")).status).toBe(401);
  });

  it("a login link sets an HttpOnly, SameSite=Strict cookie and drops the token from the URL", async () => {
    const response = await get(`/jobs/?state=failed&token=${OPERATOR.token}`);
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe("/jobs/?state=failed");
    const cookie = response.headers.get("set-cookie") ?? "";
    expect(cookie).toContain(`rota_dashboard=${OPERATOR.token}`);
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Strict/i);
    const withCookie = await get("/jobs/", undefined, {
      cookie: `rota_dashboard=${OPERATOR.token}`,
    });
    expect(withCookie.status).toBe(200);
    expect(await withCookie.text()).toContain("alice");
  });

  it("sends a strict Content-Security-Policy, and no referrer to other sites, on every answer", async () => {
    for (const response of [await get("/jobs/", OPERATOR.token), await get("/jobs/")]) {
      const csp = response.headers.get("content-security-policy") ?? "";
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("default-src 'none'");
      expect(csp).not.toContain("unsafe-inline");
      expect(response.headers.get("referrer-policy")).toBe("same-origin");
      expect(response.headers.get("x-frame-options")).toBe("DENY");
    }
    const page = await (await get("/jobs/", OPERATOR.token)).text();
    // No inline script or style anywhere in the page.
    expect(page).not.toMatch(/<script>|<script(?![^>]*\bsrc=)[^>]*>/);
    expect(page).not.toMatch(/\sstyle="/);
    expect(page).not.toMatch(/\son[a-z]+="/);
  });

  it("shows a payload with <script> as text", async () => {
    const hostile = "</pre><script>window.pwned = 1</script><img src=x onerror=alert(1)>";
    const job = await t.rota.enqueue("hostile", { note: hostile }, { queue: "hostile" });
    const page = await (await get(`/jobs/${job.id}`, OPERATOR.token)).text();
    expect(page).not.toContain("<script>window.pwned");
    expect(page).not.toContain("<img src=x");
    expect(page).toContain("&lt;/pre&gt;&lt;script&gt;window.pwned = 1&lt;/script&gt;");
    // And in a listing, and in an attribute (the filter form keeps what was typed).
    const listing = await (
      await get(`/jobs/?task=${encodeURIComponent('"><script>x</script>')}`, OPERATOR.token)
    ).text();
    expect(listing).not.toContain('"><script>x');
    expect(listing).toContain("&quot;&gt;&lt;script&gt;x&lt;/script&gt;");
  });

  it("refuses an action with a missing, wrong or another holder's CSRF token (403), changing nothing", async () => {
    const csrf = await csrfOf(OPERATOR.token, "/jobs/");
    const forms: Record<string, string>[] = [{}, { _csrf: "forged" }, { _csrf: `${csrf}x` }];
    for (const form of forms) {
      const response = await post("/actions/queues/mail/pause", form, OPERATOR.token);
      expect(response.status).toBe(403);
    }
    // From another site, even with the right token.
    expect(
      (
        await post(
          "/actions/queues/mail/pause",
          { _csrf: csrf },
          OPERATOR.token,
          "https://evil.test",
        )
      ).status,
    ).toBe(403);
    expect((await t.rota.queues.list()).find((q) => q.name === "mail")?.paused ?? false).toBe(
      false,
    );
  });

  it("records who did an action, and does it through the API", async () => {
    const seen: unknown[] = [];
    const off = t.rota.events.on("dashboard:action", (e) => void seen.push(e));
    try {
      const csrf = await csrfOf(OPERATOR.token, "/jobs/");
      const response = await post(
        "/actions/queues/mail/pause",
        { _csrf: csrf, back: "/jobs/?queue=mail" },
        OPERATOR.token,
      );
      expect(response.status).toBe(303);
      const location = new URL(response.headers.get("location") ?? "", ORIGIN);
      expect(location.pathname).toBe("/jobs/");
      expect(location.searchParams.get("done")).toBe("Queue mail paused.");
      expect((await t.rota.queues.list()).find((q) => q.name === "mail")?.paused).toBe(true);
      expect(seen).toEqual([
        {
          actor: "alice",
          action: "queue.pause",
          target: "mail",
          ok: true,
          result: "Queue mail paused.",
        },
      ]);
      // An action the API refuses comes back as a failure, recorded too.
      const bad = await post("/actions/jobs/999999999/cancel", { _csrf: csrf }, OPERATOR.token);
      expect(
        new URL(bad.headers.get("location") ?? "", ORIGIN).searchParams.get("failed"),
      ).toContain("999999999");
      expect(seen).toHaveLength(2);
    } finally {
      off();
      await t.rota.queues.resume("mail");
    }
  });

  it("never sends an action back to another site", async () => {
    const csrf = await csrfOf(OPERATOR.token, "/jobs/");
    for (const back of ["https://evil.test/", "//evil.test/x", "javascript:alert(1)"]) {
      const response = await post(
        "/actions/queues/mail/resume",
        { _csrf: csrf, back },
        OPERATOR.token,
      );
      expect(response.headers.get("location")?.startsWith("/?")).toBe(true);
    }
  });

  it("a read-only token sees no action forms and is refused actions (403)", async () => {
    const page = await (await get("/", VIEWER.token)).text();
    expect(page).toContain("read-only");
    expect(page).not.toContain('method="post"');
    const csrf = await csrfOf(OPERATOR.token, "/jobs/");
    const response = await post("/actions/queues/mail/pause", { _csrf: csrf }, VIEWER.token);
    expect(response.status).toBe(403);
    expect((await t.rota.queues.list()).find((q) => q.name === "mail")?.paused ?? false).toBe(
      false,
    );
    const readOnly = createDashboard(t.rota, {
      tokens: [OPERATOR],
      readOnly: true,
      logger: silentLogger,
    });
    const refused = await readOnly.fetch(
      new Request(`${ORIGIN}/actions/queues/mail/pause`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${OPERATOR.token}`,
          "content-type": "application/x-www-form-urlencoded",
        },
        body: new URLSearchParams({ _csrf: csrf }).toString(),
      }),
    );
    expect(refused.status).toBe(403);
  });

  it("refuses to listen beyond loopback with a generated token, and listens on loopback", async () => {
    await expect(serveDashboard(t.rota, { host: "0.0.0.0", port: 0 })).rejects.toMatchObject({
      code: "DASHBOARD_EXPOSED",
    });
    const served = await serveDashboard(t.rota, {
      host: "127.0.0.1",
      port: 0,
      logger: silentLogger,
    });
    try {
      expect(served.loginUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{32}$/);
      expect((await fetch(`${served.origin}/jobs/`)).status).toBe(401);
      const login = await fetch(served.loginUrl, { redirect: "manual" });
      expect(login.status).toBe(303);
      const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0] as string;
      const page = await fetch(`${served.origin}${login.headers.get("location")}`, {
        headers: { cookie },
      });
      expect(page.status).toBe(200);
    } finally {
      await served.close();
    }
  });

  it("refuses tokens too short to be secret, and a bad base path", () => {
    expect(() => createDashboard(t.rota, { tokens: [{ name: "x", token: "short" }] })).toThrow(
      expect.objectContaining({ code: "INVALID_OPTION" }),
    );
    expect(() => createDashboard(t.rota, { basePath: "rota/" })).toThrow(
      expect.objectContaining({ code: "INVALID_OPTION" }),
    );
  });

  it("mounts under a base path in the user's own Hono app, its links and cookie under that path", async () => {
    const mounted = createDashboard(t.rota, {
      tokens: [OPERATOR],
      basePath: "/ops/rota",
      logger: silentLogger,
    });
    const app = new Hono();
    app.get("/", (c) => c.text("the user's own home"));
    app.all("/ops/rota/*", (c) => mounted.fetch(c.req.raw));
    const login = await app.request(`/ops/rota/jobs/?token=${OPERATOR.token}`);
    expect(login.status).toBe(303);
    expect(login.headers.get("location")).toBe("/ops/rota/jobs/");
    expect(login.headers.get("set-cookie")).toContain("Path=/ops/rota/");
    const page = await app.request("/ops/rota/jobs/", {
      headers: { authorization: `Bearer ${OPERATOR.token}` },
    });
    expect(page.status).toBe(200);
    const body = await page.text();
    expect(body).toContain('href="/ops/rota/assets/dashboard.css"');
    expect(body).toContain('action="/ops/rota/jobs/"');
    expect(await (await app.request("/")).text()).toBe("the user's own home");
    expect((await app.request("/ops/rota/jobs/")).status).toBe(401);
  });
});
