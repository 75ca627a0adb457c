// The editor's defences of the user's work and its keyboard and layout behaviour, in headless
// Chromium against the real system (e2e/system.ts): stale saves, unsaved edits, Ctrl+S and
// focus, an `if`'s second child, a past run's bar while stepping, the WebSocket's URL.
import type { Browser, BrowserContext, Dialog, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { seriousViolations, type Violation } from "./axe";
import { readFileSync } from "node:fs";
import { apiGet, apiKey, apiPost, baseUrl, closedPort, createWorkflow, executionWhen, keyedContext, logFile, openBrowser, RUN, UI_TIMEOUT, watchedPage } from "./helpers";

let browser: Browser;
let context: BrowserContext;
const pageErrors: string[] = [];

/** A new tab, signed in (the key is in the tab's sessionStorage, as after signing in). */
async function newTab(): Promise<Page> {
  return watchedPage(context, pageErrors);
}

async function openWorkflow(page: Page, id: string) {
  await page.goto(`${baseUrl}/workflows/${id}`);
  await page.getByTestId("node-start").waitFor();
}

const activeTag = (page: Page) => page.evaluate(() => document.activeElement?.tagName ?? "none");

function twoNodes(name: string) {
  return {
    name: `${name}${RUN}`,
    nodes: [
      { id: "start", type: "manual_trigger", position: { x: 0, y: 0 } },
      { id: "after", type: "noop", position: { x: 300, y: 0 } },
    ],
    connections: [{ from: "start", to: "after" }],
  };
}

beforeAll(async () => {
  ({ browser, context } = await openBrowser());
});

afterEach(async () => {
  for (const page of context.pages()) await page.close();
});

afterAll(async () => {
  await browser?.close();
});

describe("the editor keeps the user's work", () => {
  it("refuses a save based on an older version and offers reload or overwrite", async () => {
    const id = await createWorkflow(twoNodes("Two tabs"));
    const [a, b] = [await newTab(), await newTab()];
    await openWorkflow(a, id);
    await openWorkflow(b, id);

    await a.getByLabel("Workflow name").fill(`From tab A${RUN}`);
    await a.getByRole("button", { name: /^Save/ }).click();
    await a.getByText("Saved as version 2.").waitFor();

    await b.getByLabel("Workflow name").fill(`From tab B${RUN}`);
    await b.getByRole("button", { name: /^Save/ }).click();
    const conflict = b.getByRole("alert", { name: "Save conflict" });
    await expect.poll(() => conflict.textContent()).toContain("version 2 of this workflow was saved meanwhile");
    let stored = await apiGet(`/api/workflows/${id}`);
    expect([stored.version, stored.name]).toEqual([2, `From tab A${RUN}`]); // tab A's save is kept

    // Reload: tab A's version, tab B's change dropped.
    await conflict.getByRole("button", { name: "Reload version 2 (discard my changes)" }).click();
    await expect.poll(() => b.getByLabel("Workflow name").inputValue()).toBe(`From tab A${RUN}`);
    expect(await b.getByText("unsaved changes").count()).toBe(0);

    // Overwrite: tab B's change replaces the newer version knowingly.
    await a.getByLabel("Workflow name").fill(`A again${RUN}`);
    await a.getByRole("button", { name: /^Save/ }).click();
    await a.getByText("Saved as version 3.").waitFor();
    await b.getByLabel("Workflow name").fill(`B again${RUN}`);
    await b.getByRole("button", { name: /^Save/ }).click();
    await conflict.getByRole("button", { name: "Overwrite with my changes" }).click();
    await b.getByText("Saved as version 4.").waitFor();
    stored = await apiGet(`/api/workflows/${id}`);
    expect([stored.version, stored.name]).toEqual([4, `B again${RUN}`]);
    // The newer outcome replaced the old "Not saved": one toast, the success.
    expect(await b.locator(".toast").allTextContents()).toEqual([expect.stringContaining("Saved as version 4.")]);
    expect(await conflict.count()).toBe(0);
  });

  it("asks before unsaved edits are dropped by a link, Back, Sign out or closing the tab", async () => {
    const id = await createWorkflow(twoNodes("Unsaved"));
    const page = await newTab();
    const dialogs: string[] = [];
    let answer: "accept" | "dismiss" = "dismiss";
    page.on("dialog", (dialog: Dialog) => {
      dialogs.push(dialog.type());
      void (answer === "accept" ? dialog.accept() : dialog.dismiss());
    });
    await page.goto(baseUrl);
    await page.getByRole("link", { name: `Unsaved${RUN}`, exact: true }).click(); // in the app
    await page.getByTestId("node-start").waitFor();
    const path = new URL(page.url()).pathname;
    await page.getByLabel("Workflow name").fill(`Unsaved edit${RUN}`);

    await page.getByRole("link", { name: "Workflows" }).click();
    await expect.poll(() => dialogs).toEqual(["confirm"]);
    expect(new URL(page.url()).pathname).toBe(path);

    await page.evaluate(() => history.back());
    await expect.poll(() => dialogs).toEqual(["confirm", "confirm"]);
    await expect.poll(() => new URL(page.url()).pathname).toBe(path);
    expect(await page.getByLabel("Workflow name").inputValue()).toBe(`Unsaved edit${RUN}`);

    await page.getByRole("button", { name: "Sign out" }).click();
    await expect.poll(() => dialogs.length).toBe(3);
    expect(await page.evaluate(() => sessionStorage.getItem("nodedrop.apiKey"))).toBe(apiKey);
    expect(await page.getByLabel("Workflow name").inputValue()).toBe(`Unsaved edit${RUN}`);

    await page.close({ runBeforeUnload: true });
    await expect.poll(() => dialogs).toEqual(["confirm", "confirm", "confirm", "beforeunload"]);
    expect(page.isClosed()).toBe(false);

    answer = "accept";
    await page.getByRole("link", { name: "Workflows" }).click();
    await page.getByRole("heading", { name: "Workflows" }).waitFor();
    expect((await apiGet(`/api/workflows/${id}`)).version).toBe(1);
  });

  it("saves with Ctrl+S wherever the focus is, and keeps focus off the page's body", async () => {
    const id = await createWorkflow(twoNodes("Keyboard"));
    const page = await newTab();
    await openWorkflow(page, id);
    // The browser's own Ctrl+S ("Save page as") is prevented: seen by a listener after the app's.
    await page.evaluate(() => {
      (window as any).saveKeyPrevented = [];
      window.addEventListener("keydown", (e) => e.key === "s" && (window as any).saveKeyPrevented.push(e.defaultPrevented));
    });
    await page.getByLabel("Workflow name").fill(`Keyboard saved${RUN}`);
    await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
    expect(await activeTag(page)).toBe("BODY");
    await page.keyboard.press("Control+s");
    await page.getByText("Saved as version 2.").waitFor();
    expect(await page.evaluate(() => (window as any).saveKeyPrevented)).toEqual([true]);

    await page.getByRole("button", { name: "Run workflow from start" }).click();
    await expect.poll(() => page.getByTestId("node-after").getAttribute("data-status")).toBe("succeeded");
    await expect.poll(() => activeTag(page)).not.toBe("BODY");

    await page.getByTestId("node-after").click({ button: "right" });
    await page.getByRole("menuitem", { name: "Show results" }).click();
    await expect.poll(() => activeTag(page)).not.toBe("BODY");

    await page.locator(".react-flow__pane").click({ position: { x: 20, y: 20 } });
    expect(await activeTag(page)).not.toBe("BODY");
    await page.getByLabel("Workflow name").fill(`Keyboard again${RUN}`);
    await page.locator(".react-flow__pane").click({ position: { x: 20, y: 20 } });
    await page.keyboard.press("Control+s");
    await page.getByText("Saved as version 3.").waitFor();
  });

  it("connects a second child of an if to its free port, false", async () => {
    const id = await createWorkflow({
      name: `If children${RUN}`,
      nodes: [
        { id: "start", type: "manual_trigger", position: { x: 0, y: 0 } },
        { id: "check", type: "if", parameters: { condition: true }, position: { x: 300, y: 0 } },
      ],
      connections: [{ from: "start", to: "check" }],
    });
    const page = await newTab();
    await openWorkflow(page, id);
    for (const child of ["noop", "noop_2"]) {
      await page.getByTestId("node-check").click();
      await page.getByRole("button", { name: "Add No operation" }).click();
      await page.getByTestId(`node-${child}`).waitFor();
    }
    await page.keyboard.press("Control+s");
    await page.getByText("Saved as version 2.").waitFor();
    const stored = await apiGet(`/api/workflows/${id}`);
    expect(stored.connections).toEqual([
      { from: "start", to: "check" },
      { from: "check", output: "true", to: "noop" },
      { from: "check", output: "false", to: "noop_2" },
    ]);
  });
});

describe("a past run", () => {
  it("shows the state and the elapsed time of the timeline step shown, not of now", async () => {
    const id = await createWorkflow({
      name: `Stepping${RUN}`,
      nodes: [
        { id: "start", type: "manual_trigger", position: { x: 0, y: 0 } },
        { id: "pause", type: "wait", parameters: { ms: 300 }, position: { x: 300, y: 0 } },
      ],
      connections: [{ from: "start", to: "pause" }],
    });
    const { id: executionId } = await apiPost("/api/executions", { workflow_id: id }, 202);
    await executionWhen(executionId, "succeeded");
    const page = await newTab();
    const sockets: string[] = [];
    page.on("websocket", (ws) => sockets.push(ws.url()));
    await page.goto(`${baseUrl}/workflows/${id}/executions/${executionId}`);
    const bar = page.getByRole("status", { name: "Execution status" });
    await expect.poll(() => bar.textContent()).toContain("succeeded");
    const recorded = await bar.getByLabel("Elapsed").textContent();

    await page.getByRole("tab", { name: /Timeline/ }).click();
    await page.getByRole("button", { name: "First event" }).click();
    const pause = page.getByTestId("node-pause");
    for (let i = 0; i < 20 && (await pause.getAttribute("data-status")) !== "running"; i++)
      await page.getByRole("button", { name: "Next ▶" }).click();
    expect(await pause.getAttribute("data-status")).toBe("running");
    expect(await bar.textContent()).toMatch(/running[\s\S]*Timeline view: the state at \d\d:\d\d:\d\d\.\d{3}/);
    const stepped = await bar.getByLabel("Elapsed").textContent();
    await page.waitForTimeout(1200); // a live bar would count on meanwhile
    expect(await bar.getByLabel("Elapsed").textContent()).toBe(stepped);

    await page.getByRole("button", { name: "Last event" }).click();
    await expect.poll(() => bar.getByLabel("Elapsed").textContent()).toBe(recorded);
    expect(sockets).toEqual([]); // a finished execution needs no live stream
  });

  it("follows a live run with the key out of the WebSocket's URL and out of the system's log", async () => {
    const id = await createWorkflow(twoNodes("Socket"));
    const page = await newTab();
    const sockets: string[] = [];
    page.on("websocket", (ws) => sockets.push(ws.url()));
    await openWorkflow(page, id);
    await page.getByRole("button", { name: "Run workflow from start" }).click();
    await expect.poll(() => page.getByTestId("node-after").getAttribute("data-status")).toBe("succeeded");
    expect(sockets.length).toBeGreaterThan(0);
    for (const url of sockets) {
      expect(url).not.toContain(apiKey);
      expect(new URL(url).searchParams.has("token")).toBe(false);
    }
    if (logFile) {
      const log = readFileSync(logFile, "utf8");
      expect(log).toContain("/ws/executions/"); // the WebSocket was logged, without the key
      // Not even `nodedrop up`'s banner: it names the key's source when no terminal reads it.
      const leaks = log.split("\n").filter((line) => line.includes(apiKey));
      expect(leaks).toEqual([]);
      expect(log).toContain("admin key: as given in NODEDROP_ADMIN_TOKEN");
    }
  });

  it("raised no error in the page", () => {
    expect(pageErrors).toEqual([]);
  });
});

describe("accessibility (axe-core)", () => {
  it("finds no serious or critical violation on the main pages", async () => {
    const id = await createWorkflow(twoNodes("Axe"));
    const { id: executionId } = await apiPost("/api/executions", { workflow_id: id }, 202);
    await executionWhen(executionId, "succeeded");
    const page = await newTab();
    const found: Record<string, Violation[]> = {};
    await page.goto(`${baseUrl}/workflows/${id}`);
    await page.getByTestId("node-start").waitFor();
    found.editor = await seriousViolations(page);
    // A palette entry's accessible name holds what it shows (label in name), so that saying
    // the visible words reaches it.
    const entries = page.locator(".palette-item");
    const visible = await entries.evaluateAll((buttons) =>
      buttons.map((b) => [...b.querySelectorAll(".palette-name, .palette-type")].map((e) => e.textContent).join(" ")),
    );
    const names = (await page.getByRole("navigation", { name: "Node palette" }).ariaSnapshot())
      .split("\n")
      .flatMap((line) => line.match(/- button "(.*)"/)?.slice(1) ?? []);
    expect(names.length).toBe(visible.length);
    expect(names.filter((name, i) => !name.includes(visible[i]))).toEqual([]);
    await page.getByRole("tab", { name: "Executions" }).click();
    await page.locator("table.history tbody tr").first().waitFor();
    found.history = await seriousViolations(page);
    await page.goto(`${baseUrl}/workflows/${id}/executions/${executionId}`);
    await expect.poll(() => page.getByTestId("node-after").getAttribute("data-status")).toBe("succeeded");
    await page.getByTestId("node-after").click();
    found.execution = await seriousViolations(page);
    await page.goto(baseUrl);
    await page.getByRole("heading", { name: "Workflows" }).waitFor();
    found.workflows = await seriousViolations(page);
    await page.goto(`${baseUrl}/credentials`);
    await page.getByRole("heading", { name: "Credentials" }).waitFor();
    found.credentials = await seriousViolations(page);
    const signedOut = await browser.newPage(); // a context without the key
    try {
      await signedOut.goto(baseUrl);
      await signedOut.getByLabel("API key").waitFor();
      found.signIn = await seriousViolations(signedOut);
    } finally {
      await signedOut.close();
    }
    expect(found).toEqual({ editor: [], history: [], execution: [], workflows: [], credentials: [], signIn: [] });
  });
});

type Box = { x: number; y: number; width: number; height: number };
const overlap = (a: Box, b: Box) =>
  a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;

/** start -> check (if) -> yes / no, on two rows: the lower right node is where the minimap is. */
function branching(name: string) {
  return {
    name: `${name}${RUN}`,
    nodes: [
      { id: "start", type: "manual_trigger", position: { x: 0, y: 100 } },
      { id: "check", type: "if", parameters: { condition: true }, position: { x: 300, y: 100 } },
      { id: "yes", type: "noop", position: { x: 600, y: 0 } },
      { id: "no", type: "noop", position: { x: 600, y: 260 } },
    ],
    connections: [
      { from: "start", to: "check" },
      { from: "check", output: "true", to: "yes" },
      { from: "check", output: "false", to: "no" },
    ],
  };
}

async function nodeBoxes(page: Page): Promise<Box[]> {
  const boxes = await Promise.all((await page.locator(".react-flow__node").all()).map((n) => n.boundingBox()));
  return boxes.filter((b): b is Box => b !== null);
}

describe("layout", () => {
  it("at 1280x800 the minimap covers no node, before and after the run bar appears", async () => {
    const id = await createWorkflow(branching("Minimap"));
    const page = await newTab();
    await page.setViewportSize({ width: 1280, height: 800 });
    await openWorkflow(page, id);
    const minimap = page.locator(".react-flow__minimap");
    await page.waitForTimeout(300); // the fit after loading
    const before = (await minimap.boundingBox())!;
    expect((await nodeBoxes(page)).filter((b) => overlap(b, before))).toEqual([]);

    await page.getByRole("button", { name: "Run workflow from start" }).click();
    await expect.poll(() => page.getByTestId("node-yes").getAttribute("data-status")).toBe("succeeded");
    await page.waitForTimeout(400); // the re-fit once the run bar took its height
    const canvas = (await page.locator(".canvas").boundingBox())!;
    const after = (await minimap.boundingBox())!;
    const boxes = await nodeBoxes(page);
    expect(boxes).toHaveLength(4);
    expect(boxes.filter((b) => overlap(b, after))).toEqual([]);
    // Every node is inside the canvas, none pushed out under the run bar.
    expect(boxes.filter((b) => b.y < canvas.y || b.y + b.height > canvas.y + canvas.height)).toEqual([]);
  });

  it("the read-only view of a past run shows its nodes on the minimap", async () => {
    const id = await createWorkflow(branching("Minimap past"));
    const { id: executionId } = await apiPost("/api/executions", { workflow_id: id }, 202);
    await executionWhen(executionId, "succeeded");
    const page = await newTab();
    await page.goto(`${baseUrl}/workflows/${id}/executions/${executionId}`);
    await page.getByTestId("node-no").waitFor();
    await expect.poll(() => page.locator(".react-flow__minimap-node").count()).toBe(4);
  });

  it("on a phone (390x844) the canvas is usable, nothing scrolls sideways and Run works by touch", async () => {
    const id = await createWorkflow(twoNodes("Phone"));
    const phone = await keyedContext(browser, true);
    try {
      const page = await watchedPage(phone, pageErrors);
      await page.goto(`${baseUrl}/workflows/${id}`);
      await page.getByTestId("node-start").waitFor();
      const canvas = (await page.locator(".canvas").boundingBox())!;
      expect(canvas.width).toBeGreaterThan(350);
      expect(canvas.height).toBeGreaterThan(300);
      const sideways = () => page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      expect(await sideways()).toBe(0);
      const signOut = (await page.getByRole("button", { name: "Sign out" }).boundingBox())!;
      for (const other of [page.getByLabel("Workflow name"), page.locator(".brand"), page.locator(".app-nav")])
        expect(overlap(signOut, (await other.boundingBox())!)).toBe(false);

      await page.getByRole("button", { name: "Run workflow from start" }).tap();
      await expect.poll(() => page.getByTestId("node-after").getAttribute("data-status")).toBe("succeeded");
      expect(await sideways()).toBe(0);
      await page.goto(baseUrl); // the list too
      await page.getByRole("heading", { name: "Workflows" }).waitFor();
      expect(await sideways()).toBe(0);
    } finally {
      await phone.close();
    }
  });
});

describe("executions lists", () => {
  it("pages past the first 50, filters by status, and lists every workflow's on a page of its own", async () => {
    const id = await createWorkflow(twoNodes("Many runs"));
    const failing = await createWorkflow({
      name: `Failing${RUN}`,
      nodes: [
        { id: "start", type: "manual_trigger", position: { x: 0, y: 0 } },
        { id: "fetch", type: "http_request", parameters: { url: `http://127.0.0.1:${await closedPort()}/` }, position: { x: 300, y: 0 } },
      ],
      connections: [{ from: "start", to: "fetch" }],
    });
    const RUNS = 55;
    for (let i = 0; i < RUNS; i++) await apiPost("/api/executions", { workflow_id: id }, 202);
    for (let i = 0; i < 2; i++) await apiPost("/api/executions", { workflow_id: failing }, 202);
    const count = async (query: string) => (await apiGet(`/api/executions?limit=200&${query}`)).items.length;
    await expect.poll(() => count(`workflow_id=${id}&status=succeeded`), { timeout: 120_000, interval: 1000 }).toBe(RUNS);
    await expect.poll(() => count(`workflow_id=${failing}&status=failed`), { timeout: UI_TIMEOUT }).toBe(2);

    const page = await newTab();
    await openWorkflow(page, id);
    await page.getByRole("tab", { name: "Executions" }).click();
    const rows = page.locator("table.history tbody tr");
    await expect.poll(() => rows.count()).toBe(50);
    await page.getByRole("button", { name: "Load 50 older" }).click();
    await expect.poll(() => rows.count()).toBe(RUNS);
    expect(await page.getByRole("button", { name: "Load 50 older" }).count()).toBe(0);
    const ids = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-execution")));
    expect(new Set(ids).size).toBe(RUNS); // no run twice, none left out
    await page.getByLabel("Status").selectOption("failed");
    await page.getByText("No failed executions.").waitFor();

    // Every workflow's executions, from the top bar.
    await page.getByRole("link", { name: "Executions" }).click();
    await page.getByRole("heading", { name: "Executions" }).waitFor();
    await expect.poll(() => rows.count()).toBe(50);
    await page.getByLabel("Status").selectOption("failed");
    // The two failing runs are the newest, so they are on the page before the filter applies
    // too: wait for the filtered list itself (only failed rows, these two among them).
    const filtered = async () => {
      const texts = await rows.allTextContents();
      return texts.every((t) => t.includes("failed")) && texts.filter((t) => t.includes(`Failing${RUN}`)).length === 2;
    };
    await expect.poll(filtered, { timeout: UI_TIMEOUT }).toBe(true);
    await rows.filter({ hasText: `Failing${RUN}` }).first().getByRole("button", { name: /^Open/ }).click();
    await page.getByText("Viewing a past execution").waitFor();
    expect(page.url()).toContain(`/workflows/${failing}/executions/`);
    await expect.poll(() => page.getByTestId("node-fetch").getAttribute("data-status")).toBe("failed");
  });
});

describe("palette and parameters", () => {
  it("finds a node type by typing, adds the first match with Enter, and labels its parameters for people", async () => {
    const id = await createWorkflow(twoNodes("Search"));
    const page = await newTab();
    await openWorkflow(page, id);
    await page.getByTestId("node-after").click();
    const search = page.getByLabel("Search node types");
    await search.fill("delay");
    const entries = page.locator(".palette-item");
    await expect.poll(() => entries.allTextContents()).toEqual(["Add Waitwait"]); // by its description
    await search.press("Enter");
    await page.getByTestId("node-wait").waitFor();
    expect(await search.inputValue()).toBe("");
    expect(await page.locator("label[for='node-wait-param-ms']").textContent()).toMatch(/^Wait \(milliseconds\)/);
    await search.fill("zzz");
    await page.getByText("No node type matches “zzz”.").waitFor();
    await search.press("Escape");
    expect(await entries.count()).toBeGreaterThan(5);
  });
});

describe("edges after a run", () => {
  it("have arrowheads, say how many items went along, and are coloured by whether any did", async () => {
    const id = await createWorkflow(branching("Edge counts"));
    const page = await newTab();
    await openWorkflow(page, id);
    const edges = page.locator(".react-flow__edge");
    await expect.poll(() => edges.count()).toBe(3);
    expect(await page.locator(".react-flow__edge path.react-flow__edge-path[marker-end]").count()).toBe(3);
    expect(await page.locator(".react-flow__edge-text").count()).toBe(0); // no run yet

    await page.getByRole("button", { name: "Run workflow from start" }).click();
    await expect.poll(() => page.getByTestId("node-yes").getAttribute("data-status")).toBe("succeeded");
    await expect.poll(async () => (await page.locator(".react-flow__edge-text").allTextContents()).sort()).toEqual([
      "0 items",
      "1 item",
      "1 item",
    ]);
    expect(await page.locator(".react-flow__edge.edge-ran").count()).toBe(2);
    expect(await page.locator(".react-flow__edge.edge-empty").count()).toBe(1);
  });
});
