// Drafts saved with problems and running a node alone without losing the other nodes' states,
// in headless Chromium against the real system (e2e/system.ts).
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { seriousViolations } from "./axe";
import { apiGet, apiPost, baseUrl, createWorkflow, executionWhen, openBrowser, RUN, shot, UI_TIMEOUT, watchedPage } from "./helpers";

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
  ({ browser, context } = await openBrowser());
  page = await watchedPage(context, pageErrors);
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

describe("comparing two executions", () => {
  it("shows each node's status, duration and output diff of two runs picked in the Executions tab", async () => {
    const id = await createWorkflow(chain("Compare"));
    for (const input of [[{ n: 1 }], [{ n: 2 }, { n: 3 }]]) {
      const { id: run } = await apiPost("/api/executions", { workflow_id: id, input }, 202);
      await executionWhen(run, "succeeded");
    }
    await page.goto(`${baseUrl}/workflows/${id}`);
    await node("start").waitFor();
    await page.getByRole("tab", { name: "Executions" }).click();
    const boxes = page.getByRole("checkbox", { name: /^Compare execution of/ });
    await expect.poll(() => boxes.count()).toBe(2);
    await boxes.nth(0).check();
    await boxes.nth(1).check();
    await page.getByRole("button", { name: "Compare the 2 picked" }).click();
    const dialog = page.getByRole("dialog", { name: "Compare two executions" });
    const row = (n: string) => dialog.locator(`tr[data-node="${n}"]`);
    await expect.poll(() => row("second").count()).toBe(1);
    expect(await row("start").locator("[data-status]").evaluateAll((els) => els.map((e) => e.getAttribute("data-status")))).toEqual(["succeeded", "succeeded"]);
    expect(await row("first").textContent()).toMatch(/\d+ ms → \d+ ms/);
    // The second run's output against the first's: item 0 changed (n: 1 → 2), item 1 added.
    expect(await row("second").locator("summary").textContent()).toBe("1 added, 1 changed");
    await row("second").locator("summary").click();
    expect(await row("second").textContent()).toContain("n: 1 → 2");
    await shot(page, "compare");
    expect(await seriousViolations(page)).toEqual([]);
    await dialog.getByRole("button", { name: "Close" }).click();
    expect(await dialog.count()).toBe(0);
  });
});

describe("running executions across workflows", () => {
  it("lists a running execution live, cancels it after asking, and the row leaves", async () => {
    const id = await createWorkflow({
      name: `Long wait${RUN}`,
      nodes: [
        { id: "start", type: "manual_trigger" },
        { id: "pause", type: "wait", parameters: { ms: 600000 } },
      ],
      connections: [{ from: "start", to: "pause" }],
    });
    await page.goto(`${baseUrl}/executions`);
    await page.getByText("Nothing is running.").waitFor();
    // Started after the page opened: the list is live.
    const { id: run } = await apiPost("/api/executions", { workflow_id: id }, 202);
    const table = page.getByRole("table", { name: "Running executions" });
    const row = table.locator(`tr[data-execution="${run}"]`);
    await row.waitFor({ timeout: UI_TIMEOUT });
    expect(await row.textContent()).toContain(`Long wait${RUN}`);
    await shot(page, "running-now");
    expect(await seriousViolations(page)).toEqual([]);
    await row.getByRole("button", { name: /^Cancel execution of/ }).click();
    await row.getByRole("group", { name: "Cancel this execution?" }).waitFor();
    expect(await seriousViolations(page)).toEqual([]);
    expect((await apiGet(`/api/executions/${run}`)).status).toMatch(/^(queued|running)$/); // asked, not yet cancelled
    await row.getByRole("button", { name: "Yes, cancel" }).click();
    await expect.poll(() => row.count(), { timeout: UI_TIMEOUT }).toBe(0);
    expect((await apiGet(`/api/executions/${run}`)).status).toBe("cancelled");
    await page.getByText("Nothing is running.").waitFor();
  });
});

describe("a failed node's stack trace", () => {
  it("shows the code node's own frames first and folds the engine's", async () => {
    const id = await createWorkflow({
      name: `Stack${RUN}`,
      nodes: [
        { id: "start", type: "manual_trigger", position: { x: 0, y: 0 } },
        {
          id: "py",
          type: "code",
          parameters: { source: "def helper(item):\n    return 1 / 0\n\n\ndef main(items, ctx):\n    return [helper(items[0])]\n" },
          position: { x: 300, y: 0 },
        },
      ],
      connections: [{ from: "start", to: "py" }],
    });
    await page.goto(`${baseUrl}/workflows/${id}`);
    await page.getByRole("button", { name: "Run workflow from start" }).click();
    await status("py", "failed");
    await expect.poll(async () => {
      await node("py").click();
      return page.getByRole("tab", { name: /^Results/ }).count();
    }).toBe(1);
    await page.getByRole("tab", { name: /^Results/ }).click();
    const own = page.getByRole("region", { name: "Your code" });
    await own.waitFor();
    const frames = await own.locator("li").allTextContents();
    expect(frames[0]).toMatch(/^line 2, in helper: return 1 \/ 0/); // innermost first
    expect(frames[1]).toMatch(/^line 6, in main/);
    const full = page.locator(".stack-trace details");
    expect(await full.getAttribute("open")).toBeNull(); // the engine's frames are folded
    expect(await full.locator("summary").textContent()).toMatch(/Full stack trace \(\d+ engine frames?, 2 of yours\)/);
    await full.locator("summary").click();
    await expect.poll(() => full.locator("pre").isVisible()).toBe(true);
    expect(await full.locator("pre").textContent()).toContain("ZeroDivisionError");
    expect(await seriousViolations(page)).toEqual([]);
  });
});

describe("a cycle", () => {
  it("is named in a banner, its nodes and connections marked, and gone once a connection is removed", async () => {
    const draft = await apiPost(
      "/api/workflows?draft=true",
      {
        name: `Cycle${RUN}`,
        nodes: [
          { id: "start", type: "manual_trigger", position: { x: 0, y: 0 } },
          { id: "a", type: "noop", position: { x: 300, y: 0 } },
          { id: "b", type: "noop", position: { x: 600, y: 0 } },
        ],
        connections: [
          { from: "start", to: "a" },
          { from: "a", to: "b" },
          { from: "b", to: "a" },
        ],
      },
      201,
    );
    expect(draft.problems.some((p: { type: string }) => p.type === "cycle")).toBe(true);
    await page.goto(`${baseUrl}/workflows/${draft.id}`);
    const banner = page.getByRole("alert", { name: "Cycle" });
    await expect.poll(() => banner.textContent()).toContain("a → b → a");
    for (const n of ["a", "b"]) await expect.poll(() => node(n).locator(".node-issues").textContent()).toContain("part of a cycle");
    expect(await node("start").locator(".node-issues").count()).toBe(0);
    await expect.poll(() => page.locator(".react-flow__edge.edge-invalid").count()).toBe(2);
    await shot(page, "cycle");
    expect(await seriousViolations(page)).toEqual([]);
    // Deleting one of its connections ends it.
    await page.locator(".react-flow__edge.edge-invalid").last().click({ force: true });
    await page.keyboard.press("Delete");
    await expect.poll(() => banner.count()).toBe(0);
    await expect.poll(() => page.locator(".react-flow__edge.edge-invalid").count()).toBe(0);
  });
});
