// What the browser test files share: the system's address and key, and the API calls they make
// to set up or check what the UI did.
import { mkdirSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { expect, inject } from "vitest";

export const baseUrl = inject("baseUrl");
export const apiKey = inject("apiKey");
export const logFile = inject("logFile");
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const UI_TIMEOUT = 20_000;
/** On a reused system (NODEDROP_E2E_URL), names unique to this run, so it holds no look-alikes. */
export const RUN = process.env.NODEDROP_E2E_URL ? ` ${Date.now().toString(36)}` : "";

export async function apiGet(path: string) {
  const response = await fetch(baseUrl + path, { headers: { Authorization: `Bearer ${apiKey}` } });
  expect(response.status).toBe(200);
  return response.json();
}

export async function apiPost(path: string, body: object, status: number): Promise<any> {
  const response = await fetch(baseUrl + path, {
    method: "POST",
    headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(response.status).toBe(status);
  return response.json();
}

export async function createWorkflow(definition: object): Promise<string> {
  return (await apiPost("/api/workflows", definition, 201)).id;
}

/** A port on 127.0.0.1 where nothing listens (connections are refused: a retryable error). */
export function closedPort(): Promise<number> {
  return new Promise((ok) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const port = (server.address() as AddressInfo).port;
      server.close(() => ok(port));
    });
  });
}

/** Set to a directory (docs/images) to save screenshots of the main views there. */
const SHOTS = process.env.NODEDROP_SCREENSHOTS;

/** Saves a screenshot of ``page`` as ``<name>.png`` when NODEDROP_SCREENSHOTS is set. */
export async function shot(page: Page, name: string) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.waitForTimeout(300); // let transitions settle
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

/** A headless Chromium whose pages hold the API key in their session storage (no key prompt). */
export async function openBrowser(): Promise<{ browser: Browser; context: BrowserContext }> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  return { browser, context: await keyedContext(browser) };
}

/** A desktop window of ``browser`` whose pages hold the API key; ``phone``: 390x844, by touch. */
export async function keyedContext(browser: Browser, phone = false): Promise<BrowserContext> {
  const context = await browser.newContext(
    phone
      ? { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true }
      : { viewport: { width: 1440, height: 900 } },
  );
  await context.addInitScript((key) => sessionStorage.setItem("nodedrop.apiKey", key), apiKey);
  return context;
}

/** A new page of ``context`` whose uncaught errors land in ``errors`` (each test file checks
 * it stays empty): an exception in the UI fails the journey even when the screen looks right. */
export async function watchedPage(context: BrowserContext, errors: string[]): Promise<Page> {
  const page = await context.newPage();
  page.setDefaultTimeout(UI_TIMEOUT);
  page.on("pageerror", (e) => errors.push(e.message));
  return page;
}

/** The execution ``id`` once its status matches ``status`` (polled through the API). */
export async function executionWhen(id: string, status: RegExp | string): Promise<any> {
  let execution: any;
  const matcher = expect.poll(async () => (execution = await apiGet(`/api/executions/${id}`)).status, {
    timeout: UI_TIMEOUT,
  });
  if (typeof status === "string") await matcher.toBe(status);
  else await matcher.toMatch(status);
  return execution;
}
