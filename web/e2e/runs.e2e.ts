// Drafts saved with problems and running a node alone without losing the other nodes' states,
// in headless Chromium against the real system (e2e/system.ts).
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { seriousViolations } from "./axe";
import { apiGet, apiKey, apiPost, baseUrl, CHROMIUM, createWorkflow, RUN, UI_TIMEOUT } from "./helpers";

let browser: Browser;
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];

const node = (id: string) => page.getByTestId(`node-${id}`);

function chain(name: string) {
  return {
    name: `${name}${RUN}`,
    nodes: [
      { id: "start", type: "manual_trigger", position: { x: 0, y: 0 } },
      { id: "first", type: "noop", position: { x: 300, y: 0 } },
      { id: "second", type: "noop", position: { x: 600, y: 0 } },
    ],
    connections: [
      { from: "start", to: "first" },
      { from: "first", to: "second" },
    ],
  };
}

async function status(id: string, expected: string) {
  await expect.poll(() => node(id).getAttribute("data-status"), { timeout: UI_TIMEOUT }).toBe(expected);
}

beforeAll(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  await context.addInitScript((key) => sessionStorage.setItem("nodedrop.apiKey", key), apiKey);
  page = await context.newPage();
  page.setDefaultTimeout(UI_TIMEOUT);
  page.on("pageerror", (e) => pageErrors.push(e.message));
});

afterEach(() => {
  expect(pageErrors).toEqual([]);
});

afterAll(async () => {
  await browser?.close();
});

describe("drafts with problems", () => {
  it("saves a draft without a trigger, and an empty one, and shows their problems again on reload", async () => {
    const id = await createWorkflow(chain("Draft"));
    await page.goto(`${baseUrl}/workflows/${id}`);
    await node("start").click();
    await page.keyboard.press("Delete");
    await expect.poll(() => node("start").count()).toBe(0);
    await page.keyboard.press("Control+s");
    await page.getByText(/Saved as version 2, with 1 problem/).waitFor();
    const problems = page.getByRole("alert").filter({ hasText: "Problems:" });
    await expect.poll(() => problems.textContent()).toMatch(/trigger/);
    const saved = await apiGet(`/api/workflows/${id}`);
    expect(saved.version).toBe(2);
    expect(saved.nodes.map((n: { id: string }) => n.id)).toEqual(["first", "second"]);
    expect(saved.problems.length).toBe(1);
    expect(await seriousViolations(page)).toEqual([]);

    await page.reload(); // the problems come with the workflow
    await node("first").waitFor();
    await expect.poll(() => problems.textContent()).toMatch(/trigger/);

    // Empty: every node deleted, saved all the same.
    for (const n of ["first", "second"]) {
      await node(n).click();
      await page.keyboard.press("Delete");
      await expect.poll(() => node(n).count()).toBe(0);
    }
    await page.keyboard.press("Control+s");
    await page.getByText(/Saved as version 3, with/).waitFor();
    const empty = await apiGet(`/api/workflows/${id}`);
    expect(empty.nodes).toEqual([]);
    expect(empty.version).toBe(3);
  });

  it("marks a draft's problem on its node and field, and a run of it is refused naming it", async () => {
    const draft = await apiPost(
      "/api/workflows?draft=true",
      {
        name: `Draft run${RUN}`,
        nodes: [
          { id: "start", type: "manual_trigger", position: { x: 0, y: 0 } },
          { id: "pause", type: "wait", parameters: { ms: "soon" }, position: { x: 300, y: 0 } },
        ],
        connections: [{ from: "start", to: "pause" }],
      },
      201,
    );
    expect(draft.problems.map((p: { loc: unknown[] }) => p.loc)).toEqual([["nodes", 1, "parameters", "ms"]]);
    await page.goto(`${baseUrl}/workflows/${draft.id}`);
    // Marked as soon as it opens: on the node, and under the field in its settings.
    await expect.poll(() => node("pause").locator(".node-issues").count()).toBe(1);
    await page.getByRole("button", { name: "Run workflow from start" }).click();
    await page.getByText(/Cannot run: 1 problem/).waitFor();
    await expect.poll(() => page.locator(".field.invalid").first().textContent()).toMatch(/Wait \(milliseconds\)/);
    expect(await seriousViolations(page)).toEqual([]);
    const { items } = await apiGet(`/api/executions?workflow_id=${draft.id}`);
    expect(items).toEqual([]); // nothing ran

    // Fixed in the field and run: saved first, then it runs.
    const ms = page.locator("#node-pause-param-ms");
    await ms.fill("1");
    await ms.blur();
    await page.getByRole("button", { name: "Run workflow from start" }).click();
    await status("pause", "succeeded");
    await expect.poll(() => node("pause").locator(".node-issues").count()).toBe(0);
  });
});

describe("running one node alone", () => {
  it("keeps the other nodes' last states on the canvas", async () => {
    const id = await createWorkflow(chain("Keep states"));
    await page.goto(`${baseUrl}/workflows/${id}`);
    await page.getByRole("button", { name: "Run workflow from start" }).click();
    for (const n of ["start", "first", "second"]) await status(n, "succeeded");

    await page.getByRole("button", { name: "Actions for node second" }).click();
    await page.getByRole("menuitem", { name: "Execute node", exact: true }).click();
    await page.getByText("Running node second alone").waitFor();
    // The run bar is the node run's own: one node, done.
    const bar = page.getByRole("status", { name: "Execution status" });
    await expect.poll(() => bar.textContent(), { timeout: UI_TIMEOUT }).toContain("1/1 nodes done");
    await status("second", "succeeded");
    // ...and the nodes it did not run keep what the whole run showed.
    for (const n of ["start", "first"]) expect(await node(n).getAttribute("data-status")).toBe("succeeded");
    // Their results are still there too.
    await node("first").click();
    await expect.poll(() => page.getByRole("tab", { name: /^Results/ }).textContent()).toContain("succeeded");
    const runs = await apiGet(`/api/executions?workflow_id=${id}`);
    expect(runs.items.map((e: { mode: string }) => e.mode)).toEqual(["node", "trigger"]);
  });
});
