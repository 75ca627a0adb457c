// Rerun, retry, "run the parents first" and pinned outputs, driven from the canvas in headless
// Chromium against the real system (e2e/system.ts).
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { seriousViolations } from "./axe";
import { apiGet, apiPost, baseUrl, closedPort, createWorkflow, executionWhen, openBrowser, RUN, UI_TIMEOUT, watchedPage } from "./helpers";

let browser: Browser;
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];

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

async function finished(id: string): Promise<any> {
  return executionWhen(id, /^(succeeded|failed|partial|cancelled|timed_out)$/);
}

async function run(workflowId: string): Promise<any> {
  const { id } = await apiPost("/api/executions", { workflow_id: workflowId }, 202);
  return finished(id);
}

/** The execution the page shows (its URL), once it is not ``old``. */
async function openedExecution(old: string): Promise<string> {
  let shown = "";
  await expect
    .poll(() => (shown = new URL(page.url()).pathname.split("/executions/")[1] ?? ""), { timeout: UI_TIMEOUT })
    .toMatch(/.+/);
  await expect.poll(() => (shown = new URL(page.url()).pathname.split("/executions/")[1] ?? "")).not.toBe(old);
  return shown;
}

/** Which nodes ran in an execution and which were reused from the one it reran. */
async function ranAndReused(id: string): Promise<{ ran: string[]; reused: string[] }> {
  const { events } = await apiGet(`/api/executions/${id}/events`);
  const ran = events.filter((e: any) => e.type === "NodeStarted").map((e: any) => e.node);
  const reused = events.filter((e: any) => e.type === "NodeSucceeded" && e.data.reused_from).map((e: any) => e.node);
  return { ran: [...new Set<string>(ran)].sort(), reused: reused.sort() };
}

const node = (id: string) => page.getByTestId(`node-${id}`);

/** Selects a node by a click; again if the click landed while the canvas was still being
 * fitted (it moves the nodes for 150 ms after the run bar appears). */
async function select(nodeId: string) {
  await expect
    .poll(async () => {
      await node(nodeId).click();
      return page.getByRole("tab", { name: /^Results/ }).count();
    })
    .toBe(1);
}

async function openMenu(nodeId: string) {
  await page.getByRole("button", { name: `Actions for node ${nodeId}` }).click();
}

beforeAll(async () => {
  ({ browser, context } = await openBrowser());
});

beforeAll(async () => {
  page = await watchedPage(context, pageErrors);
});

afterEach(() => {
  expect(pageErrors).toEqual([]);
});

afterAll(async () => {
  await browser?.close();
});

describe("rerun and retry", () => {
  it("retries a failed execution from the executions list and opens the retry live", async () => {
    const closed = `http://127.0.0.1:${await closedPort()}/`;
    const id = await createWorkflow({
      name: `Retry${RUN}`,
      nodes: [
        { id: "start", type: "manual_trigger", position: { x: 0, y: 0 } },
        { id: "fetch", type: "http_request", parameters: { url: closed }, position: { x: 300, y: 0 } },
      ],
      connections: [{ from: "start", to: "fetch" }],
    });
    const failed = await run(id);
    expect(failed.status).toBe("failed");

    await page.goto(`${baseUrl}/workflows/${id}`);
    await node("start").waitFor();
    await page.getByRole("tab", { name: "Executions" }).click();
    await page.getByRole("button", { name: /^Retry execution of/ }).waitFor();
    expect(await seriousViolations(page)).toEqual([]);
    await page.getByRole("button", { name: /^Retry execution of/ }).click();

    const retry = await openedExecution("");
    expect(retry).not.toBe(failed.id);
    expect((await apiGet(`/api/executions/${retry}`)).rerun_of).toBe(failed.id);
    await page.getByText("Viewing a past execution as it ran").waitFor();
    // Followed live: the node it retried runs again (and fails again: nothing listens there).
    await expect.poll(() => node("fetch").getAttribute("data-status"), { timeout: UI_TIMEOUT }).toBe("failed");
    expect(await ranAndReused(retry)).toEqual({ ran: ["fetch"], reused: ["start"] });
    expect(await seriousViolations(page)).toEqual([]);

    // Retry from the read-only view of that run, too.
    await page.getByRole("note").getByRole("button", { name: "↻ Retry" }).click();
    const again = await openedExecution(retry);
    expect((await apiGet(`/api/executions/${again}`)).rerun_of).toBe(retry);
    expect((await finished(again)).status).toBe("failed");
  });

  it("reruns from a chosen node, from the read-only view and from the executions list", async () => {
    const id = await createWorkflow(chain("Rerun from a node"));
    const first = await run(id);
    expect(first.status).toBe("succeeded");

    await page.goto(`${baseUrl}/workflows/${id}/executions/${first.id}`);
    await expect.poll(() => node("second").getAttribute("data-status")).toBe("succeeded");
    await openMenu("second");
    await page.getByRole("menuitem", { name: "Rerun from this node…" }).click();
    const dialog = page.getByRole("dialog", { name: "Rerun from a node" });
    await expect.poll(() => dialog.getByLabel("From node").inputValue()).toBe("second");
    expect(await seriousViolations(page)).toEqual([]);
    await dialog.getByRole("button", { name: "↻ Rerun" }).click();
    const fromSecond = await openedExecution(first.id);
    await expect.poll(() => node("second").getAttribute("data-status"), { timeout: UI_TIMEOUT }).toBe("succeeded");
    await finished(fromSecond);
    expect(await ranAndReused(fromSecond)).toEqual({ ran: ["second"], reused: ["first", "start"] });
    await select("first");
    await page.getByRole("tab", { name: /^Results/ }).click();
    await page.getByText(`not run: output reused from execution ${first.id}`).waitFor();

    // From the editor's Executions tab: the newest row is that rerun; rerun it from "first".
    await page.getByRole("button", { name: "← Back to editing" }).click();
    await node("start").waitFor();
    await page.getByRole("tab", { name: "Executions" }).click();
    await page.getByRole("button", { name: /^Rerun from a node: execution of/ }).first().click();
    await dialog.getByLabel("From node").selectOption("first");
    await dialog.getByRole("button", { name: "↻ Rerun" }).click();
    const fromFirst = await openedExecution("");
    await finished(fromFirst);
    expect((await apiGet(`/api/executions/${fromFirst}`)).rerun_of).toBe(fromSecond);
    expect(await ranAndReused(fromFirst)).toEqual({ ran: ["first", "second"], reused: ["start"] });
  });
});

describe("execute node", () => {
  it("offers to run the parents first when they have no recorded output", async () => {
    const id = await createWorkflow(chain("Parents first"));
    await page.goto(`${baseUrl}/workflows/${id}`);
    await node("start").waitFor();
    await openMenu("second");
    await page.getByRole("menuitem", { name: "Execute node", exact: true }).click();

    const dialog = page.getByRole("dialog", { name: "Run the parents first?" });
    expect(await dialog.textContent()).toContain("first"); // the API names the parent
    expect(await page.getByRole("alert").count()).toBe(0); // no error toast instead
    expect(await seriousViolations(page)).toEqual([]);
    await dialog.getByRole("button", { name: "▶ Run from start" }).click();
    for (const n of ["start", "first", "second"])
      await expect.poll(() => node(n).getAttribute("data-status"), { timeout: UI_TIMEOUT }).toBe("succeeded");

    // Now the parents have output: the node runs alone, no question asked.
    await openMenu("second");
    await page.getByRole("menuitem", { name: "Execute node", exact: true }).click();
    await page.getByText("Running node second alone").waitFor();
    expect(await dialog.count()).toBe(0);
    // The list is the projection, which may be a moment behind the accepted request.
    await expect
      .poll(async () => (await apiGet(`/api/executions?workflow_id=${id}`)).items.map((e: any) => e.mode), { timeout: UI_TIMEOUT })
      .toEqual(["node", "trigger"]);
  });
});

describe("pinned output", () => {
  it("pins a node's last output, edits it as JSON, marks the node and unpins it", async () => {
    const id = await createWorkflow(chain("Pinned"));
    await run(id);
    await page.goto(`${baseUrl}/workflows/${id}`);
    await node("start").waitFor();
    await page.getByRole("tab", { name: "Executions" }).click();
    await page.getByRole("button", { name: /^Open execution/ }).first().click();
    await page.getByRole("button", { name: "← Back to editing" }).waitFor();
    // The read-only view offers no pinning: it is an edit of the draft.
    await expect.poll(() => node("first").getAttribute("data-status")).toBe("succeeded");
    await select("first");
    await page.getByRole("tab", { name: /^Results/ }).click();
    expect(await page.getByRole("button", { name: "Pin this output" }).count()).toBe(0);
    await page.getByRole("button", { name: "← Back to editing" }).click();

    await page.getByRole("button", { name: "Run workflow from start" }).click();
    await expect.poll(() => node("first").getAttribute("data-status"), { timeout: UI_TIMEOUT }).toBe("succeeded");
    await select("first");
    await page.getByRole("tab", { name: /^Results/ }).click();
    await page.getByRole("button", { name: "Pin this output" }).click();
    await node("first").getByRole("img", { name: "Output pinned" }).waitFor();
    expect(await node("first").getAttribute("aria-label")).toContain("output pinned");

    await page.getByRole("tab", { name: /^Settings/ }).click();
    const editor = page.getByLabel(/^Pinned output \(JSON/);
    await editor.fill('{"main": [1]}');
    await page.getByRole("button", { name: "Apply pinned output" }).click();
    await page.getByText("Not valid: item 0 of port “main” must be a JSON object").waitFor();
    await editor.fill('{"main": [{"pinned": "yes"}]}');
    await page.getByRole("button", { name: "Apply pinned output" }).click();
    expect(await page.getByText(/^Not valid/).count()).toBe(0);
    expect(await seriousViolations(page)).toEqual([]);
    await page.keyboard.press("Control+s");
    await page.getByText("Saved as version 2.").waitFor();
    const saved = await apiGet(`/api/workflows/${id}`);
    expect(saved.nodes.find((n: any) => n.id === "first").pinned_output).toEqual({ main: [{ pinned: "yes" }] });

    // A run takes the pinned items instead of running the node.
    const pinnedRun = await run(id);
    expect(pinnedRun.nodes.first.pinned).toBe(true);
    expect(pinnedRun.nodes.second.output).toEqual({ main: [{ pinned: "yes" }] });

    await page.getByRole("button", { name: "Unpin" }).click();
    expect(await node("first").getByRole("img", { name: "Output pinned" }).count()).toBe(0);
    await page.keyboard.press("Control+s");
    await page.getByText("Saved as version 3.").waitFor();
    expect((await apiGet(`/api/workflows/${id}`)).nodes.find((n: any) => n.id === "first").pinned_output).toBeUndefined();
  });
});
