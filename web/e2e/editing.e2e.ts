// Editing aids on the canvas, in headless Chromium against the real system (e2e/system.ts):
// undo and redo, copy and paste of nodes and of workflow JSON, the webhook URL and the docs
// link in a node's settings.
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { seriousViolations } from "./axe";
import { apiGet, baseUrl, createWorkflow, openBrowser, RUN, watchedPage } from "./helpers";

let browser: Browser;
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  ({ browser, context } = await openBrowser());
});

afterEach(async () => {
  await page?.close();
});

afterAll(async () => {
  await browser?.close();
});

async function open(definition: object): Promise<string> {
  const id = await createWorkflow(definition);
  page = await watchedPage(context, pageErrors);
  await page.goto(`${baseUrl}/workflows/${id}`);
  await page.getByTestId("node-start").waitFor();
  return id;
}

const twoNodes = (name: string) => ({
  name: `${name}${RUN}`,
  nodes: [
    { id: "start", type: "manual_trigger", position: { x: 0, y: 0 } },
    { id: "after", type: "noop", position: { x: 300, y: 0 } },
  ],
  connections: [{ from: "start", to: "after" }],
});

const shownNodes = () => page.locator(".react-flow__node").evaluateAll((els) => els.map((e) => e.getAttribute("data-id")).sort());
const shownEdges = () => page.locator(".react-flow__edge").count();

describe("undo and redo", () => {
  it("take back and redo adding, deleting and editing nodes, by keys and by buttons", async () => {
    const id = await open(twoNodes("Undo"));
    await page.getByTestId("node-after").click();
    await page.getByRole("button", { name: "Add No operation" }).click();
    await page.getByTestId("node-noop").waitFor();
    await expect.poll(shownEdges).toBe(2);

    await page.keyboard.press("Control+z");
    await expect.poll(shownNodes).toEqual(["after", "start"]);
    await expect.poll(shownEdges).toBe(1);
    await page.keyboard.press("Control+Shift+z");
    await expect.poll(shownNodes).toEqual(["after", "noop", "start"]);
    await expect.poll(shownEdges).toBe(2);
    await page.getByRole("button", { name: "Undo" }).click();
    await expect.poll(shownNodes).toEqual(["after", "start"]);
    await page.keyboard.press("Control+y");
    await expect.poll(shownNodes).toEqual(["after", "noop", "start"]);

    // Deleting a node takes its connections along; undo brings both back.
    await page.getByTestId("node-after").click();
    await page.keyboard.press("Delete");
    await expect.poll(shownNodes).toEqual(["noop", "start"]);
    await expect.poll(shownEdges).toBe(0);
    await page.getByRole("button", { name: "Undo" }).click();
    await expect.poll(shownNodes).toEqual(["after", "noop", "start"]);
    await expect.poll(shownEdges).toBe(2);

    // A drag is one step, back to where the node was.
    const box = async () => (await page.getByTestId("node-noop").boundingBox())!;
    const before = await box();
    await page.mouse.move(before.x + 20, before.y + 10);
    await page.mouse.down();
    for (let i = 1; i <= 5; i++) await page.mouse.move(before.x + 20, before.y + 10 + i * 30);
    await page.mouse.up();
    await expect.poll(async () => (await box()).y).toBeGreaterThan(before.y + 100);
    await page.keyboard.press("Control+z");
    await expect.poll(async () => Math.round((await box()).y)).toBe(Math.round(before.y));
    await expect.poll(shownNodes).toEqual(["after", "noop", "start"]);

    // A parameter typed is one step; Ctrl+Z inside the field is the field's own undo.
    await page.getByTestId("node-after").click();
    const nodeName = page.getByLabel("Display name (optional)");
    await nodeName.pressSequentially("Renamed");
    await page.getByTestId("node-start").click();
    await page.keyboard.press("Control+z");
    await page.getByTestId("node-after").click();
    await expect.poll(() => nodeName.inputValue()).toBe("");

    expect(await seriousViolations(page)).toEqual([]);
    await page.keyboard.press("Control+s");
    await page.getByText("Saved as version 2.").waitFor();
    const stored = await apiGet(`/api/workflows/${id}`);
    expect(stored.nodes.map((n: any) => n.id).sort()).toEqual(["after", "noop", "start"]);
    expect(stored.nodes.find((n: any) => n.id === "after").name).toBeUndefined();
  });
});

describe("copy and paste", () => {
  it("copies the selected nodes with their connection, pastes them with fresh ids, and pastes workflow JSON", async () => {
    const id = await open({
      name: `Copy${RUN}`,
      nodes: [
        { id: "start", type: "manual_trigger", position: { x: 0, y: 0 } },
        { id: "first", type: "wait", parameters: { ms: 5 }, position: { x: 300, y: 0 } },
        { id: "second", type: "noop", position: { x: 600, y: 0 } },
      ],
      connections: [
        { from: "start", to: "first" },
        { from: "first", to: "second" },
      ],
    });
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: baseUrl });
    await page.getByTestId("node-first").click();
    await page.getByTestId("node-second").click({ modifiers: ["Control"] });
    await page.keyboard.press("Control+c");
    await page.getByText("Copied 2 nodes.").waitFor();
    const copied = JSON.parse(await page.evaluate(() => navigator.clipboard.readText()));
    expect(copied.connections).toEqual([{ from: "first", to: "second" }]);

    await page.keyboard.press("Control+v");
    await expect.poll(shownNodes).toEqual(["first", "first_2", "second", "second_2", "start"]);
    await expect.poll(shownEdges).toBe(3);

    // Workflow JSON from elsewhere (here an export of one workflow) is added the same way.
    const exported = {
      format: "nodedrop.workflows",
      format_version: 1,
      workflows: [{ name: "other", versions: [{ version: 1, definition: { name: "other", nodes: [{ id: "start", type: "manual_trigger" }, { id: "tail", type: "noop" }], connections: [{ from: "start", to: "tail" }] } }] }],
    };
    await page.evaluate((text) => navigator.clipboard.writeText(text), JSON.stringify(exported));
    await page.getByTestId("node-start").click();
    await page.keyboard.press("Control+v");
    await expect.poll(shownNodes).toEqual(["first", "first_2", "second", "second_2", "start", "start_2", "tail"]);
    // Invalid workflow JSON is refused with the reason; plain text is ignored.
    await page.evaluate(() => navigator.clipboard.writeText('{"nodes": [{"id": "x"}]}'));
    await page.keyboard.press("Control+v");
    await page.getByText('Not pasted: Node 0 of the pasted JSON needs an "id" and a "type".').waitFor();

    expect(await seriousViolations(page)).toEqual([]);
    await page.keyboard.press("Control+s");
    await page.getByText("Saved as version 2.").waitFor();
    const stored = await apiGet(`/api/workflows/${id}`);
    expect(stored.connections).toEqual([
      { from: "start", to: "first" },
      { from: "first", to: "second" },
      { from: "first_2", to: "second_2" },
      { from: "start_2", to: "tail" },
    ]);
    expect(stored.nodes.find((n: any) => n.id === "first_2").parameters).toEqual({ ms: 5 });
  });
});

describe("a node's settings", () => {
  it("show a saved webhook's URL with a copy button, and the node type's docs", async () => {
    const id = await open({
      name: `Webhook URL${RUN}`,
      nodes: [
        { id: "start", type: "manual_trigger", position: { x: 0, y: 0 } },
        { id: "hook", type: "webhook_trigger", position: { x: 0, y: 200 } },
      ],
      connections: [],
    });
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: baseUrl });
    await page.getByTestId("node-hook").click();
    const url = `${baseUrl}/webhooks/${id}/hook`;
    await expect.poll(() => page.getByLabel("Webhook URL").inputValue()).toBe(url);
    await page.getByRole("button", { name: "Copy URL" }).click();
    await page.getByText("Copied.").waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(url);
    const answer = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(answer.status).toBe(202); // the URL shown runs the workflow

    await page.getByText("Docs: webhook_trigger").click();
    const docs = page.getByLabel("Docs of webhook_trigger");
    await expect.poll(() => docs.textContent()).toContain("| `webhook_trigger` |");
    expect(await seriousViolations(page)).toEqual([]);

    // A webhook only in the draft has no URL yet: the API would answer 404.
    await page.getByRole("button", { name: /webhook_trigger$/ }).click();
    await page.getByTestId("node-webhook_trigger").waitFor();
    await page.getByText("Save the workflow to get this webhook’s URL.").waitFor();
    await page.keyboard.press("Control+s");
    await expect.poll(() => page.getByLabel("Webhook URL").inputValue()).toBe(`${baseUrl}/webhooks/${id}/webhook_trigger`);
  });
});

describe("the page", () => {
  it("raised no error", () => {
    expect(pageErrors).toEqual([]);
  });
});
