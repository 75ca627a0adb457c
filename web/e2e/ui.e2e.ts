// The UI in headless Chromium against the real system (e2e/system.ts): build a workflow on the
// canvas, save, run, watch the states, read outputs, run one node, cancel, step through history.
// One browser page goes through the steps in order, as a person would.
import { chromium, type Browser, type Locator, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiGet, apiKey, baseUrl, CHROMIUM, closedPort, createWorkflow, RUN, shot as saveShot, UI_TIMEOUT } from "./helpers";

let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

async function shot(name: string) {
  await saveShot(page, name);
}

const node = (id: string): Locator => page.getByTestId(`node-${id}`);

async function expectStatus(id: string, status: string, timeout = UI_TIMEOUT) {
  await expect.poll(() => node(id).getAttribute("data-status"), { timeout }).toBe(status);
}

async function save() {
  await page.getByRole("button", { name: /^Save/ }).click();
  await page.getByText(/Saved as version \d+/).waitFor({ timeout: UI_TIMEOUT });
}

/** The element's box once it has stopped moving (the canvas pans to a new node). */
async function settledBox(locator: Locator) {
  let before = await locator.boundingBox();
  for (;;) {
    await page.waitForTimeout(150);
    const now = await locator.boundingBox();
    if (now && before && now.x === before.x && now.y === before.y && now.width === before.width) return now;
    before = now;
  }
}

/** Drags a connection from one node's output port to another's input port. */
async function connect(from: string, output: string, to: string) {
  const source = page.locator(`.react-flow__handle.source[data-nodeid="${from}"][data-handleid="${output}"]`);
  const target = page.locator(`.react-flow__handle.target[data-nodeid="${to}"]`);
  const a = await settledBox(source);
  const b = await settledBox(target);
  await page.mouse.move(a.x + a.width / 2, a.y + a.height / 2);
  await page.mouse.down();
  await page.mouse.move((a.x + b.x) / 2, (a.y + b.y) / 2, { steps: 5 });
  await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2, { steps: 5 });
  await page.mouse.up();
}



beforeAll(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  page.setDefaultTimeout(UI_TIMEOUT);
  page.on("pageerror", (e) => pageErrors.push(e.message));
});

afterAll(async () => {
  await browser?.close();
});

describe("nodedrop web UI", () => {
  it("refuses a wrong key and signs in with the admin key", async () => {
    await page.goto(baseUrl);
    await shot("sign-in");
    await page.getByLabel("API key").fill("not-a-key");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("not accepted");
    await page.getByLabel("API key").fill(apiKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Workflows" }).waitFor();
    // The key is kept for this tab only.
    expect(await page.evaluate(() => sessionStorage.getItem("nodedrop.apiKey"))).toBe(apiKey);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
  });

  it("creates, renames and deletes a workflow from the list", async () => {
    await page.getByLabel("New workflow").fill(`Scratch${RUN}`);
    await page.getByRole("button", { name: "+ Create workflow" }).click();
    await node("start").waitFor(); // a new workflow starts with a manual trigger
    await page.getByRole("link", { name: "Workflows" }).click();
    const row = page.getByRole("row", { name: new RegExp(`Scratch${RUN}`) });
    await row.getByRole("button", { name: "Rename" }).click();
    await page.getByLabel("New name").fill(`Scratch${RUN} renamed`);
    await page.getByRole("button", { name: "Save name" }).click();
    const renamed = page.getByRole("row", { name: new RegExp(`Scratch${RUN} renamed`) });
    await renamed.waitFor();
    await expect.poll(() => renamed.textContent()).toContain("v2");
    await shot("workflows");
    await renamed.getByRole("button", { name: "Delete" }).click();
    await renamed.getByRole("button", { name: "Yes, delete" }).click();
    await expect.poll(() => page.getByRole("row", { name: new RegExp(`Scratch${RUN}`) }).count()).toBe(0);
  });

  it("builds a three-node workflow on the canvas and shows the API's validation errors", async () => {
    await page.getByLabel("New workflow").fill(`Three nodes${RUN}`);
    await page.getByRole("button", { name: "+ Create workflow" }).click();
    await node("start").click();
    // With the trigger selected, a palette click adds a node connected after it.
    await page.getByRole("button", { name: "Add Set fields" }).click();
    await node("set").waitFor();
    const values = page.locator("#node-set-param-values");
    await values.fill('{"n": 7, "who": "{{ execution.trigger }}"}');
    await values.blur();
    // Added with nothing selected: unconnected; then connected by dragging port to port.
    await page.locator(".react-flow__pane").click({ position: { x: 20, y: 20 } });
    await page.getByRole("button", { name: "Add No operation" }).click();
    await node("noop").waitFor();
    await connect("set", "main", "noop");
    await expect.poll(() => page.locator(".react-flow__edge").count()).toBe(2);
    // Move: drag the noop node down by its title.
    const title = await settledBox(node("noop").locator(".node-title"));
    await page.mouse.move(title.x + 10, title.y + 5);
    await page.mouse.down();
    await page.mouse.move(title.x + 10, title.y + 65, { steps: 5 });
    await page.mouse.move(title.x + 10, title.y + 125, { steps: 5 });
    await page.mouse.up();
    // Delete: a node selected on the canvas goes with the Delete key.
    await page.locator(".react-flow__pane").click({ position: { x: 20, y: 20 } });
    await page.getByRole("button", { name: "Add Merge" }).click();
    await node("merge").waitFor();
    await page.keyboard.press("Delete");
    await expect.poll(() => node("merge").count()).toBe(0);
    // An invalid parameter: saved as a draft all the same, its problem shown on the node and
    // on the field.
    await node("set").click();
    await values.fill('["not", "an", "object"]');
    await values.blur();
    await page.getByRole("button", { name: /^Save/ }).click();
    await page.getByText(/Saved as version \d+, with 1 problem/).waitFor();
    await expect.poll(() => node("set").locator(".node-issues").textContent()).toMatch(/valid dictionary/);
    await expect.poll(() => page.locator(".field.invalid").first().textContent()).toMatch(/Values[\s\S]*valid dictionary/);
    await shot("validation-errors");
    await values.fill('{"n": 7, "who": "{{ execution.trigger }}"}');
    await values.blur();
    await save();
    await expect.poll(() => node("set").locator(".node-issues").count()).toBe(0);
    const workflowId = page.url().split("/workflows/")[1];
    const saved = await apiGet(`/api/workflows/${workflowId}`);
    const at = Object.fromEntries(saved.nodes.map((n: { id: string; position: { y: number } }) => [n.id, n.position]));
    expect(Object.keys(at)).toEqual(["start", "set", "noop"]);
    expect(at.noop.y).toBeGreaterThan(at.set.y + 50); // the move was saved
    expect(saved.connections).toEqual([
      { from: "start", to: "set" },
      { from: "set", to: "noop" },
    ]);
    await page.reload(); // what was saved comes back
    await node("noop").waitFor();
    await expect.poll(() => page.locator(".react-flow__edge").count()).toBe(2);
  });

  it("runs from the trigger and every node turns succeeded; a node's output opens", async () => {
    await page.getByRole("button", { name: "Run workflow from start" }).click();
    for (const id of ["start", "set", "noop"]) await expectStatus(id, "succeeded");
    // The state is in words too, not colour alone.
    expect(await node("noop").textContent()).toContain("succeeded");
    const bar = page.getByRole("status", { name: "Execution status" });
    await expect.poll(() => bar.textContent()).toContain("3/3 nodes done");
    await node("set").click();
    const panel = page.getByRole("complementary", { name: "Node details" });
    const output = panel.getByRole("region", { name: "Output" });
    await expect.poll(() => output.locator("table").textContent()).toContain("start");
    expect(await output.locator("th").allTextContents()).toEqual(["#", "n", "who"]);
    await output.getByRole("button", { name: "JSON" }).click();
    expect(JSON.parse((await output.locator("pre").textContent())!)).toEqual([{ n: 7, who: "start" }]);
    await shot("run-succeeded");
  });

  it("runs one node alone from its context menu, with recorded input", async () => {
    await node("noop").click({ button: "right" });
    const menu = page.getByRole("menu");
    await menu.waitFor();
    // Keyboard operable: focus is in the menu and Enter activates the focused item.
    await expect.poll(() => page.evaluate(() => document.activeElement?.textContent)).toBe("Execute node");
    await shot("context-menu");
    await page.keyboard.press("Enter");
    const bar = page.getByRole("status", { name: "Execution status" });
    await expect.poll(() => bar.textContent()).toContain("(node noop)");
    await expect.poll(() => bar.textContent()).toContain("succeeded");
    await expectStatus("noop", "succeeded");
    // The other nodes are not part of a node-mode execution: they keep the states the run
    // before showed (as n8n does).
    expect(await node("set").getAttribute("data-status")).toBe("succeeded");
    const input = page.getByRole("region", { name: "Input" });
    await expect.poll(() => input.locator("table").textContent()).toContain("7");
    // With an input typed in: opened from the node's ⋯ button with the keyboard alone.
    await page.getByRole("button", { name: "Actions for node noop" }).focus();
    await page.keyboard.press("Enter");
    await page.getByRole("menu").waitFor();
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("Enter");
    const dialog = page.getByRole("dialog");
    await dialog.getByLabel("Input").fill('{"main": [{"x": 1}, {"x": 2}]}');
    await dialog.getByRole("button", { name: "▶ Execute node" }).click();
    const output = page.getByRole("region", { name: "Output" });
    await expect.poll(() => output.locator("h4").textContent()).toContain("(2 items)");
    expect(await output.locator("tbody").textContent()).toBe("1122");
  });

  it("cancels a long run", async () => {
    await node("noop").click();
    await page.getByRole("button", { name: "Add Wait" }).click();
    await node("wait").waitFor();
    await page.locator("#node-wait-param-ms").fill("600000");
    await save();
    await page.getByRole("button", { name: "Run workflow from start" }).click();
    await expectStatus("wait", "running");
    expect(await node("wait").textContent()).toContain("running");
    await shot("running");
    await page.getByRole("button", { name: "■ Cancel" }).click();
    await expectStatus("wait", "cancelled");
    const bar = page.getByRole("status", { name: "Execution status" });
    await expect.poll(() => bar.textContent()).toContain("cancelled");
    expect(await node("noop").getAttribute("data-status")).toBe("succeeded");
  });

  it("filters the log by node", async () => {
    await page.getByRole("tab", { name: "Log" }).click();
    const log = page.getByRole("log", { name: "Execution log" });
    await expect.poll(() => log.textContent()).toContain("execution cancelled");
    await page.getByLabel("Node", { exact: true }).selectOption("wait");
    const lines = await log.locator(".log-line .log-node").allTextContents();
    expect(lines.length).toBeGreaterThan(0);
    expect(new Set(lines)).toEqual(new Set(["wait"]));
    expect(await log.locator("time").first().textContent()).toMatch(/^\d\d:\d\d:\d\d\.\d{3}$/);
  });

  it("lists the executions and opens one as it ran, stepping through its timeline", async () => {
    await page.getByRole("tab", { name: "Executions" }).click();
    const rows = page.locator("table.history tbody tr");
    await expect.poll(() => rows.count()).toBe(4);
    expect(await rows.nth(0).textContent()).toContain("cancelled");
    expect(await rows.nth(1).textContent()).toContain("node noop");
    expect(await rows.nth(2).textContent()).toContain("node noop");
    await shot("history");
    // The oldest: the three-node run, before the wait node was added.
    await rows.nth(3).getByRole("button", { name: /^Open/ }).click();
    await page.getByText("Viewing a past execution").waitFor();
    await expect.poll(() => node("wait").count()).toBe(0); // the definition as it ran
    await expectStatus("noop", "succeeded");
    await page.getByRole("tab", { name: /Timeline/ }).click();
    await page.getByRole("button", { name: "First event" }).click();
    const label = page.locator(".step-label");
    await expect.poll(() => label.textContent()).toMatch(/^Step 1 of \d+: ExecutionRequested/);
    expect(await node("start").getAttribute("data-status")).toBe("idle");
    await page.getByRole("button", { name: "Next ▶" }).click();
    await expect.poll(() => label.textContent()).toContain("ExecutionStarted");
    for (const id of ["start", "set", "noop"]) await expectStatus(id, "pending");
    await page.getByRole("button", { name: "Next ▶" }).click(); // NodeReady start
    await expectStatus("start", "queued");
    // Step by step to the end: the states only move forward to succeeded.
    const total = Number((await label.textContent())!.match(/of (\d+)/)![1]);
    for (let i = 3; i < total; i++) await page.getByRole("button", { name: "Next ▶" }).click();
    await expect.poll(() => label.textContent()).toContain("Execution finished: succeeded");
    for (const id of ["start", "set", "noop"]) await expectStatus(id, "succeeded");
    await page.getByRole("button", { name: "◀ Previous" }).click();
    await shot("timeline");
    await page.getByRole("button", { name: "← Back to editing" }).click();
    await node("wait").waitFor();
  });

  it("shows retries with the attempt number, then the failure with its stack trace", async () => {
    const closed = `http://127.0.0.1:${await closedPort()}/`;
    const id = await createWorkflow({
      name: `Retries${RUN}`,
      nodes: [
        { id: "start", type: "manual_trigger", position: { x: 0, y: 0 } },
        {
          id: "fetch",
          type: "http_request",
          parameters: { url: closed },
          retry: { max_attempts: 2, initial_interval_ms: 1500 },
          position: { x: 300, y: 0 },
        },
      ],
      connections: [{ from: "start", to: "fetch" }],
    });
    await page.goto(`${baseUrl}/workflows/${id}`);
    await page.getByRole("button", { name: "Run workflow from start" }).click();
    await expectStatus("fetch", "retrying");
    expect(await node("fetch").textContent()).toContain("retrying (attempt 2 next)");
    await expectStatus("fetch", "failed");
    expect(await node("fetch").textContent()).toContain("failed after 2 attempts");
    await node("fetch").click();
    const error = page.getByRole("region", { name: "Error" });
    await expect.poll(() => error.textContent()).toContain("HttpServerError");
    expect(await error.locator("pre").textContent()).toContain("Traceback");
    const facts = await page.locator(".facts").textContent();
    expect(facts).toMatch(/Attempts\s*2/);
    const attempts = page.getByRole("region", { name: "Attempts" }).locator("tbody tr");
    expect(await attempts.count()).toBe(2);
    expect(await attempts.nth(0).textContent()).toMatch(/failed[\s\S]*HttpServerError[\s\S]*retry in 1500 ms/);
    expect(await attempts.nth(1).textContent()).toContain("failed");
    await shot("failed-node");
  });

  it("resumes after a dropped WebSocket from the last seq, with a notice meanwhile", async () => {
    const id = await createWorkflow({
      name: `Reconnect${RUN}`,
      nodes: [
        { id: "start", type: "manual_trigger", position: { x: 0, y: 0 } },
        { id: "pause", type: "wait", parameters: { ms: 2500 }, position: { x: 300, y: 0 } },
        { id: "after", type: "noop", position: { x: 600, y: 0 } },
      ],
      connections: [
        { from: "start", to: "pause" },
        { from: "pause", to: "after" },
      ],
    });
    // The first connection is dropped after 4 events, the first reconnect is refused at once,
    // the next one goes through.
    const urls: string[] = [];
    let dropAfterSeq = 0;
    await page.routeWebSocket(/\/ws\/executions\//, (ws) => {
      urls.push(ws.url());
      if (urls.length === 2) {
        ws.close({ code: 4000, reason: "test: refused" });
        return;
      }
      const server = ws.connectToServer();
      if (urls.length !== 1) return;
      let count = 0;
      server.onMessage((message) => {
        if (count === 4) return;
        ws.send(message);
        count += 1;
        if (count === 4) {
          dropAfterSeq = JSON.parse(String(message)).seq;
          ws.close({ code: 4000, reason: "test: dropped" });
          server.close();
        }
      });
    });
    try {
      await page.goto(`${baseUrl}/workflows/${id}`);
      await page.getByRole("button", { name: "Run workflow from start" }).click();
      await page.getByText("Live updates disconnected").waitFor();
      for (const n of ["start", "pause", "after"]) await expectStatus(n, "succeeded");
      expect(urls).toHaveLength(3);
      expect(urls[0]).toContain("after_seq=0");
      expect(urls[2]).toContain(`after_seq=${dropAfterSeq}`);
      expect(await page.getByText("Live updates disconnected").count()).toBe(0);
      // Every event once, none missing: the same list as the API's.
      const executionId = new URL(urls[0]).pathname.split("/").pop()!;
      const stored = await apiGet(`/api/executions/${executionId}/events`);
      await expect.poll(() => page.getByRole("tab", { name: /Timeline/ }).textContent()).toBe(`Timeline (${stored.events.length} events)`);
    } finally {
      await page.unrouteAll();
    }
  });

  it("raised no error in the page", () => {
    expect(pageErrors).toEqual([]);
  });
});
