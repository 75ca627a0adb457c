// What the browser test files share: the system's address and key, and the API calls they make
// to set up or check what the UI did.
import { mkdirSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import type { Page } from "playwright-core";
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
