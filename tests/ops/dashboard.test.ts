/**
 * The dashboard in real headless Chromium (Debian's `chromium`, driven by playwright-core) against a real router
 * and a real long-polling worker: log in with the admin key, watch a worker's slot turn busy while a request runs
 * and the counters move, sign out. Screenshots (desktop and phone) go to test-results/ for a person to look at.
 * Needs /usr/bin/chromium (`apt-get install -y chromium`); fails loudly without it.
 */
import assert from "node:assert/strict";
import { type Browser, chromium, type Page } from "playwright-core";
import { eventually, startWorker } from "../helpers/router.ts";
import { ScriptedEngine } from "../helpers/scripted-engine.ts";
import { type OpsRouter, startOpsRouter } from "./helpers.ts";

const CHROMIUM = "/usr/bin/chromium";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const RESULTS = new URL("../../test-results/", import.meta.url);

function ask(router: OpsRouter, text: string): Promise<number> {
  return fetch(`${router.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${router.keys.api}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: text }] }),
  }).then(async (r) => (await r.text(), r.status));
}

/** Opens the dashboard, recording page errors, console errors (CSP violations included) and every request URL. */
async function open(browser: Browser, router: OpsRouter, viewport: { width: number; height: number }) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1, isMobile: viewport.width < 600 });
  const page = await context.newPage();
  const problems: string[] = [];
  const urls: string[] = [];
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") problems.push(`console ${msg.type()}: ${msg.text()}`);
  });
  page.on("request", (request) => urls.push(request.url()));
  const response = await page.goto(`${router.url}/dashboard`);
  return { page, context, problems, urls, response };
}

async function login(page: Page, key: string): Promise<void> {
  await page.locator("#key").fill(key);
  await page.locator("#login-form button[type=submit]").click();
}

const text = async (page: Page, selector: string) => (await page.locator(selector).textContent())?.trim() ?? "";
const busySlots = (page: Page) => page.locator(".worker .slot.busy").count();

Deno.test({
  name: "dashboard: log in, see a worker's slot busy while a request runs, counters move (Chromium)",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const chromiumThere = await Deno.stat(CHROMIUM).then(() => true, () => false);
  assert.ok(chromiumThere, `${CHROMIUM} is missing: install it with \`apt-get install -y chromium\``);
  await Deno.mkdir(RESULTS, { recursive: true });
  const router = await startOpsRouter();
  const worker = startWorker(router, new ScriptedEngine({ slots: 2 }), { key: router.keys.admin });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  try {
    await eventually(async () => (await router.store.fleet()).workers.some((w) => w.info.loaded), 10_000, "worker");
    const desktop = await open(browser, router, { width: 1280, height: 900 });
    const { page } = desktop;
    const headers = desktop.response!.headers();
    assert.match(headers["content-security-policy"], /script-src 'self'/);
    assert.doesNotMatch(headers["content-security-policy"], /unsafe-inline/);
    assert.equal(headers["x-frame-options"], "DENY");

    // A wrong key is refused and not kept.
    await page.locator("#login").waitFor({ state: "visible" });
    await login(page, "adm_" + "x".repeat(43));
    await eventually(async () => (await text(page, "#login-error")).includes("rejected"), 10_000, "login error");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("auxot.adminKey")), null);

    await login(page, router.keys.admin);
    await page.locator(".worker .slot").first().waitFor({ timeout: 10_000 });
    assert.equal(await page.locator(".worker .slot").count(), 2);
    assert.equal(await busySlots(page), 0);
    assert.equal(await text(page, "#tile-workers .value"), "1 / 1");
    const requestsBefore = Number(await text(page, "#tile-requests .value"));

    for (const words of ["echo one two three", "echo four five six seven"]) assert.equal(await ask(router, words), 200);
    const slow = ask(router, "slow 5000 the slow answer");
    await eventually(async () => await busySlots(page) === 1, 10_000, "a busy slot on the dashboard");
    assert.equal(await text(page, "#tile-slots .value"), "1 / 2");
    await eventually(async () => (await text(page, "#jobs tbody")).includes("running"), 10_000, "a running job row");
    await page.screenshot({ path: new URL("dashboard-desktop.png", RESULTS).pathname, fullPage: true });

    assert.equal(await slow, 200);
    await eventually(async () => await busySlots(page) === 0, 10_000, "the slot freed");
    await eventually(
      async () => Number(await text(page, "#tile-requests .value")) > requestsBefore,
      10_000,
      "the request counter moving",
    );
    assert.ok(Number(await text(page, "#tile-tokens .value")) >= 7, "completion tokens counted");
    assert.match(await text(page, "#recipe"), /\/api\/openai\/v1/);
    assert.ok((await text(page, "#recipe")).includes(`ANTHROPIC_BASE_URL=${router.url}/api/anthropic`));

    // The key lives in sessionStorage and headers only: never in a URL, never on the page.
    assert.equal(await page.evaluate(() => sessionStorage.getItem("auxot.adminKey")), router.keys.admin);
    assert.ok(desktop.urls.every((u) => !u.includes(router.keys.admin)));
    assert.ok(!(await page.content()).includes(router.keys.admin));
    assert.ok(desktop.urls.some((u) => u.endsWith("/api/status")));
    // The only console error allowed is the failed status call with the wrong key (a 401).
    const unexpected = desktop.problems.filter((p) => !p.includes("401"));
    assert.deepEqual(unexpected, []);

    await page.locator("#logout").click();
    await page.locator("#login").waitFor({ state: "visible" });
    assert.equal(await page.evaluate(() => sessionStorage.getItem("auxot.adminKey")), null);
    await desktop.context.close();

    // A phone-sized viewport: same data, one column.
    const phone = await open(browser, router, { width: 390, height: 844 });
    await login(phone.page, router.keys.admin);
    const slowAgain = ask(router, "slow 4000 again");
    await eventually(async () => await busySlots(phone.page) === 1, 10_000, "a busy slot on the phone");
    const overflow = Number(
      await phone.page.evaluate("document.documentElement.scrollWidth - window.innerWidth"),
    );
    assert.ok(overflow <= 0, `the page scrolls sideways on a phone by ${overflow}px`);
    await phone.page.screenshot({ path: new URL("dashboard-phone.png", RESULTS).pathname, fullPage: true });
    assert.equal(await slowAgain, 200);
    assert.deepEqual(phone.problems, []);
    await phone.context.close();
  } finally {
    await browser.close();
    await worker.stop();
    await router.close();
  }
});
