// The dashboard in a real browser (Chromium through playwright-core): every
// page loads and draws, every action is confirmed in a dialog and changes
// the database, a <script> payload stays text, and the refusals hold: no
// token, a wrong CSRF token, a read-only token. Screenshots of the overview,
// a failed job and a schedule's target timeline are saved for the README
// (ROTA_SCREENSHOT_DIR, default a temporary folder; `npm run screenshots`
// writes docs/img).
import { existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServedDashboard, serveDashboard } from "../../src/dashboard/serve.js";
import { silentLogger } from "../../src/logger.js";
import { defineTask } from "../../src/task.js";
import type { Worker } from "../../src/worker/worker.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const available = existsSync(CHROMIUM);
if (!available && process.env.ROTA_REQUIRE_BROWSER === "1") {
  throw new Error(
    `No Chromium at ${CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM_PATH.`,
  );
}
const SHOTS = process.env.ROTA_SCREENSHOT_DIR ?? join(tmpdir(), "rota-dashboard-shots");

const OPERATOR = { name: "alice", token: "alice-browser-token-0123456789" };
const VIEWER = { name: "bob", token: "bob-browser-token-0123456789", readOnly: true };

let t: TestSchema;
let served: ServedDashboard;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let worker: Worker;
const ids: Record<string, string> = {};

/** Opens `path` logged in as `token`'s holder (through its login link). */
async function login(ctx: BrowserContext, token: string, path = "/"): Promise<Page> {
  const p = await ctx.newPage();
  await p.goto(`${served.origin}${path}${path.includes("?") ? "&" : "?"}token=${token}`);
  return p;
}

/** Clicks an action's button and accepts its confirmation; resolves once the page came back. */
async function act(p: Page, button: string, scope = "main"): Promise<string> {
  let question = "";
  p.once("dialog", (dialog) => {
    question = dialog.message();
    void dialog.accept();
  });
  await Promise.all([
    p.waitForURL(/[?&](done|failed)=/),
    p.locator(scope).getByRole("button", { name: button, exact: true }).first().click(),
  ]);
  return question;
}

describe.skipIf(!available)("the dashboard in Chromium", () => {
  beforeAll(async () => {
    t = await migratedSchema();
    mkdirSync(SHOTS, { recursive: true });
    const fails = defineTask({
      name: "invoice.send",
      queue: "billing",
      handler: async () => {
        throw new Error("the mail server refused the invoice");
      },
    });
    worker = t.rota.worker({
      tasks: [
        fails,
        defineTask({ name: "report.build", queue: "billing", handler: async () => {} }),
      ],
      logger: silentLogger,
      rescueIntervalMs: 0,
      statsIntervalMs: 200,
      retention: { succeededMs: 3_600_000 },
    });
    await worker.start();
    ids.failed = (
      await t.rota.enqueue(
        "invoice.send",
        { tenant: 42, invoice: 7 },
        { queue: "billing", maxAttempts: 1 },
      )
    ).id;
    for (let i = 0; i < 5; i++)
      await t.rota.enqueue("report.build", { tenant: i }, { queue: "billing" });
    for (let i = 0; (await t.rota.getJob(ids.failed as string))?.state !== "failed"; i++) {
      if (i > 200) throw new Error("the failing job never failed");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await worker.stop();
    ids.waiting = (
      await t.rota.enqueue("digest.mail", { tenant: 42 }, { queue: "mail", delayMs: 3_600_000 })
    ).id;
    ids.hostile = (
      await t.rota.enqueue(
        "digest.mail",
        { note: "<script>window.pwned = 1</script>" },
        { queue: "mail" },
      )
    ).id;
    await t.rota.schedules.upsert({
      name: "scan.projects",
      task: "scan.project",
      queue: "scans",
      cron: "0 * * * *",
      window: "10m",
      distribution: "random",
      seed: 7,
    });
    await t.rota.schedules.targets.add(
      "scan.projects",
      Array.from({ length: 200 }, (_, i) => `project-${i + 1}`),
    );
    await t.rota.schedules.upsert({ name: "nightly.cleanup", task: "cleanup", cron: "0 3 * * *" });
    const orchestrator = t.rota.orchestrator();
    await orchestrator.tick();
    await orchestrator.stop();

    served = await serveDashboard(t.rota, {
      port: 0,
      tokens: [OPERATOR, VIEWER],
      refreshMs: 400,
      logger: silentLogger,
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    // A zone half an hour off UTC: a time the page shows in the browser's
    // zone instead of UTC, as all its times are, shows.
    context = await browser.newContext({
      viewport: { width: 1360, height: 900 },
      timezoneId: "America/St_Johns",
    });
    page = await login(context, OPERATOR.token);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await served?.close();
    await t?.drop();
  });

  it("the overview shows each queue, the throughput chart and the workers", async () => {
    await page.goto(`${served.origin}/`);
    await expect.poll(() => page.locator("tr[data-queue=billing]").count()).toBe(1);
    await expect.poll(() => page.locator('figure[data-chart="throughput"] canvas').count()).toBe(1);
    // The billing queue's failed column (the 8th: queue, status, limit,
    // available, scheduled, running, succeeded, failed) holds its one failed job.
    const failedCell = page.locator("tr[data-queue=billing] td").nth(7);
    expect(await failedCell.innerText()).toBe("1");
    expect(await page.locator("table.queues thead th").nth(7).innerText()).toBe("failed");
    expect(await page.locator("table.workers tbody tr").count()).toBeGreaterThanOrEqual(1);
    await page.screenshot({ path: join(SHOTS, "dashboard-overview.png"), fullPage: true });
  });

  it("pauses and resumes a queue, each confirmed, and records the actor", async () => {
    const actions: { actor: string; action: string }[] = [];
    const off = t.rota.events.on("dashboard:action", (e) => void actions.push(e));
    try {
      await page.goto(`${served.origin}/`);
      const question = await act(page, "Pause", "tr[data-queue=mail]");
      expect(question).toContain("Pause queue mail?");
      expect(await page.locator(".notice.done").innerText()).toBe("Queue mail paused.");
      expect((await t.rota.queues.list()).find((q) => q.name === "mail")?.paused).toBe(true);
      await act(page, "Resume", "tr[data-queue=mail]");
      expect((await t.rota.queues.list()).find((q) => q.name === "mail")?.paused).toBe(false);
      expect(actions.map((a) => `${a.actor} ${a.action}`)).toEqual([
        "alice queue.pause",
        "alice queue.resume",
      ]);
    } finally {
      off();
    }
  });

  it("filters jobs by state and by payload, and shows a failed job with its error and stack", async () => {
    await page.goto(`${served.origin}/jobs/`);
    await page.selectOption("select[name=state]", "failed");
    await Promise.all([
      page.waitForURL(/state=failed/),
      page.getByRole("button", { name: "Filter", exact: true }).click(),
    ]);
    expect(await page.locator("table.jobs tbody tr").count()).toBe(1);
    await page.goto(`${served.origin}/jobs/`);
    await page.fill("input[name=payload]", '{"tenant": 42}');
    await Promise.all([
      page.waitForURL(/payload=/),
      page.getByRole("button", { name: "Filter", exact: true }).click(),
    ]);
    const found = await page.locator("table.jobs tbody td.num a").allInnerTexts();
    expect(found.sort()).toEqual([ids.failed, ids.waiting].sort());
    await page.goto(`${served.origin}/jobs/${ids.failed}`);
    expect(await page.locator("article.error-entry .error").innerText()).toBe(
      "the mail server refused the invoice",
    );
    expect(await page.locator("article.error-entry pre.stack").innerText()).toContain(
      "Error: the mail server refused the invoice",
    );
    await page.screenshot({ path: join(SHOTS, "dashboard-failed-job.png") });
  });

  it("retries a failed job, cancels a waiting one, and bulk-retries failed jobs by filter", async () => {
    await page.goto(`${served.origin}/jobs/${ids.failed}`);
    await act(page, "Retry");
    expect((await t.rota.getJob(ids.failed as string))?.state).toBe("available");
    await page.goto(`${served.origin}/jobs/${ids.waiting}`);
    expect(await act(page, "Cancel")).toContain(`Cancel job ${ids.waiting}?`);
    expect((await t.rota.getJob(ids.waiting as string))?.state).toBe("cancelled");
    // Fail it again behind the dashboard's back, then retry by filter.
    const again = await t.rota.enqueue("invoice.send", {}, { queue: "billing", maxAttempts: 1 });
    await t.db.pool.query(
      `update "${t.schema}".jobs set state = 'failed', finished_at = now() where id = $1`,
      [again.id],
    );
    await page.goto(`${served.origin}/jobs/?queue=billing&state=failed`);
    await act(page, "Retry failed jobs of this filter");
    expect(await page.locator(".notice.done").innerText()).toBe(
      "1 failed job(s) back in their queues.",
    );
    expect((await t.rota.getJob(again.id))?.state).toBe("available");
  });

  it("shows a <script> payload as text, and runs no script from it", async () => {
    await page.goto(`${served.origin}/jobs/${ids.hostile}`);
    expect(await page.locator("pre.json").innerText()).toContain(
      "<script>window.pwned = 1</script>",
    );
    expect(await page.evaluate(() => (globalThis as { pwned?: number }).pwned)).toBeUndefined();
  });

  it("a schedule with targets shows its timeline, the load per minute, and when one target runs next", async () => {
    await page.goto(`${served.origin}/schedules/`);
    expect(await page.locator("table.schedules tbody tr").count()).toBe(2);
    await page.getByRole("link", { name: "scan.projects" }).click();
    await expect
      .poll(() => page.locator('figure[data-chart="timeline"]').getAttribute("data-drawn"))
      .toBe("200");
    await expect.poll(() => page.locator('figure[data-chart="load"] canvas').count()).toBe(1);
    // The charts keep to UTC, as the text does: the cursor over the first
    // minute's bar names the cadence's occurrence.
    const heading = await page.locator("h2", { hasText: "Next cadence" }).innerText();
    const occurrence = /Next cadence: (\S+ \S+Z)/.exec(heading)?.[1];
    expect(occurrence).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
    // With the focus in the lookup's input the page does not refresh (it
    // would redraw the chart, and its legend, under the cursor).
    await page.focus("input[name=target]");
    await expect
      .poll(
        async () => {
          const over = page.locator('figure[data-chart="load"] .u-over');
          const box = await over.boundingBox();
          if (!box) return null;
          await over.hover({ position: { x: box.width * 0.05, y: box.height / 2 } });
          return page
            .locator('figure[data-chart="load"] .u-legend .u-series')
            .first()
            .locator(".u-value")
            .innerText();
        },
        { timeout: 15_000 },
      )
      .toBe(occurrence);
    await page.mouse.move(0, 0);
    await page.fill("input[name=target]", "project-7");
    await Promise.all([
      page.waitForURL(/target=project-7/),
      page.getByRole("button", { name: "run next?" }).click(),
    ]);
    const next = await t.rota.schedules.upcoming("scan.projects", {
      target: "project-7",
      limit: 1,
    });
    expect(await page.locator("ul.lookup li").first().innerText()).toContain(
      (next[0] as { runAt: Date }).runAt.toISOString().slice(0, 19).replace("T", " "),
    );
    // The page's own shot, clipped to the section, taken with the focus in
    // the input so that no refresh replaces the section meanwhile (an
    // element's screenshot found it detached half-way).
    await page.focus("input[name=target]");
    const section = page.locator("section", { hasText: "Next cadence" });
    await expect.poll(() => section.boundingBox(), { timeout: 15_000 }).not.toBeNull();
    const box = await section.boundingBox();
    expect(box).not.toBeNull();
    await page.screenshot({
      path: join(SHOTS, "dashboard-schedule-timeline.png"),
      clip: box ?? undefined,
      fullPage: true,
    });
  });

  it("triggers, pauses, resumes a schedule and skips one of its runs", async () => {
    await page.goto(`${served.origin}/schedules/nightly.cleanup`);
    await act(page, "Trigger now");
    const notice = await page.locator(".notice.done").innerText();
    const executionId = /execution (\d+)/.exec(notice)?.[1] as string;
    const triggered = await t.rota.getJob(executionId);
    expect(triggered?.schedule_id).toBe((await t.rota.schedules.get("nightly.cleanup"))?.id);
    expect(triggered?.occurrence_at).toBeNull();
    await act(page, "Pause");
    expect((await t.rota.schedules.get("nightly.cleanup"))?.paused).toBe(true);
    await act(page, "Resume");
    expect((await t.rota.schedules.get("nightly.cleanup"))?.paused).toBe(false);
    const orchestrator = t.rota.orchestrator();
    await orchestrator.tick();
    await orchestrator.stop();
    await page.goto(`${served.origin}/schedules/nightly.cleanup`);
    const planned = (await t.rota.schedules.upcoming("nightly.cleanup", { limit: 5 })).find(
      (run) => run.executionId !== null && run.occurrenceAt !== null,
    );
    expect(planned).toBeDefined();
    await act(page, "Skip", "table.upcoming");
    expect((await t.rota.getJob(planned?.executionId as string))?.state).toBe("skipped");
  });

  it("refreshes its figures in place, without a reload", async () => {
    await page.goto(`${served.origin}/jobs/?queue=live`);
    await page.evaluate(() => {
      (globalThis as { marker?: number }).marker = 1;
    });
    const job = await t.rota.enqueue("live.task", {}, { queue: "live" });
    await expect
      .poll(() => page.locator("table.jobs tbody").innerText(), { timeout: 10_000 })
      .toContain(job.id);
    expect(await page.evaluate(() => (globalThis as { marker?: number }).marker)).toBe(1);
  });

  it("refuses a browser without a token, a wrong CSRF token, and actions for a read-only token", async () => {
    const anonymous = await browser.newContext();
    const response = await (await anonymous.newPage()).goto(`${served.origin}/`);
    expect(response?.status()).toBe(401);
    await anonymous.close();

    const forged = await page.request.post(`${served.origin}/actions/queues/mail/pause`, {
      form: { _csrf: "forged", back: "/" },
      maxRedirects: 0,
    });
    expect(forged.status()).toBe(403);
    expect((await t.rota.queues.list()).find((q) => q.name === "mail")?.paused).toBe(false);

    const viewerContext = await browser.newContext();
    const viewer = await login(viewerContext, VIEWER.token, "/");
    expect(await viewer.locator("header .who").innerText()).toContain("read-only");
    expect(await viewer.locator('form[method="post"]').count()).toBe(0);
    await viewer.goto(`${served.origin}/schedules/nightly.cleanup`);
    expect(await viewer.getByRole("button", { name: "Trigger now" }).count()).toBe(0);
    const refused = await viewer.request.post(`${served.origin}/actions/queues/mail/pause`, {
      form: { _csrf: "anything", back: "/" },
      maxRedirects: 0,
    });
    expect(refused.status()).toBe(403);
    expect((await t.rota.queues.list()).find((q) => q.name === "mail")?.paused).toBe(false);
    await viewerContext.close();
  });
});
