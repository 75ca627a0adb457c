// The expression editor, the side-by-side node view and a trigger run with typed items, in
// headless Chromium against the real system (e2e/system.ts).
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { seriousViolations } from "./axe";
import { apiGet, baseUrl, createWorkflow, keyedContext, openBrowser, RUN, shot, UI_TIMEOUT, watchedPage } from "./helpers";

let browser: Browser;
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];

const ITEMS = [
  { total: 120, name: "Ann" },
  { total: 5, name: "Bob" },
];

function branching(name: string) {
  return {
    name: `${name}${RUN}`,
    nodes: [
      { id: "start", type: "manual_trigger", position: { x: 0, y: 0 } },
      { id: "check", type: "if", parameters: { condition: "{{ item.total > 100 }}" }, position: { x: 300, y: 0 } },
      { id: "big", type: "noop", position: { x: 600, y: -80 } },
      { id: "small", type: "noop", position: { x: 600, y: 80 } },
    ],
    connections: [
      { from: "start", to: "check" },
      { from: "check", output: "true", to: "big" },
      { from: "check", output: "false", to: "small" },
    ],
  };
}

const node = (id: string) => page.getByTestId(`node-${id}`);
const dialog = () => page.getByRole("dialog");
const condition = () => page.getByTestId("node-check-param-condition-expression");
const conditionText = () => condition().locator(".cm-content");
const preview = () => page.locator("#node-check-param-condition-preview");

async function openMenu(nodeId: string) {
  await page.getByRole("button", { name: `Actions for node ${nodeId}` }).click();
}

/** The workflow's executions, newest first. */
async function executions(workflowId: string): Promise<any[]> {
  return (await apiGet(`/api/executions?workflow_id=${workflowId}`)).items;
}

/** Replaces the condition's text by typing ``keys`` (CodeMirror closes brackets as it goes). */
async function retype(keys: string) {
  await conditionText().click();
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Delete");
  await page.keyboard.type(keys);
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

describe("a trigger run with typed items", () => {
  it("checks the items, shows the API's 422 at the field, then runs with them", async () => {
    const id = await createWorkflow(branching("Typed input"));
    await page.goto(`${baseUrl}/workflows/${id}`);
    await node("start").waitFor();

    await openMenu("start");
    await page.getByRole("menuitem", { name: "Run workflow with input…" }).click();
    const field = dialog().getByLabel("Input items");
    await field.fill('[{"total": 1}, 2]');
    await dialog().getByRole("button", { name: "▶ Run workflow" }).click();
    await dialog().getByText("Not valid: item 2 must be a JSON object").waitFor();
    expect(await executions(id)).toEqual([]);

    // What only the API refuses: the key it reserves for stored outputs.
    await field.fill('[{"total": 1}, {"$nodedrop_ref": "x"}]');
    await dialog().getByRole("button", { name: "▶ Run workflow" }).click();
    await dialog().getByText(/Not valid: item 2, key “\$nodedrop_ref”: the key .* is reserved/).waitFor();
    expect(await field.getAttribute("aria-invalid")).toBe("true");
    expect(await seriousViolations(page)).toEqual([]);
    expect(await executions(id)).toEqual([]);

    await field.fill(JSON.stringify(ITEMS));
    await dialog().getByRole("button", { name: "▶ Run workflow" }).click();
    await dialog().waitFor({ state: "detached" });
    await expect.poll(() => node("small").getAttribute("data-status"), { timeout: UI_TIMEOUT }).toBe("succeeded");
    const [run] = await executions(id);
    const { events } = await apiGet(`/api/executions/${run.id}/events`);
    expect(events[0].data.input).toEqual(ITEMS);
    expect(events[0].data.trigger).toBe("start");
    // Each item went its own way.
    await expect.poll(() => node("big").getAttribute("data-status")).toBe("succeeded");

    // The items typed are offered again for the next run (in this tab).
    await openMenu("start");
    await page.getByRole("menuitem", { name: "Run workflow with input…" }).click();
    expect(JSON.parse(await dialog().getByLabel("Input items").inputValue())).toEqual(ITEMS);
    await dialog().getByRole("button", { name: "Cancel" }).click();
  });
});

describe("the node view and the expression editor", () => {
  it("shows input, parameters and output side by side, previews, completes, marks errors and inserts fields", async () => {
    const id = await createWorkflow(branching("Expressions"));
    await page.goto(`${baseUrl}/workflows/${id}`);
    await node("start").waitFor();
    await openMenu("start");
    await page.getByRole("menuitem", { name: "Run workflow with input…" }).click();
    await dialog().getByLabel("Input items").fill(JSON.stringify(ITEMS));
    await dialog().getByRole("button", { name: "▶ Run workflow" }).click();
    await expect.poll(() => node("small").getAttribute("data-status"), { timeout: UI_TIMEOUT }).toBe("succeeded");

    await node("check").click();
    await page.getByRole("button", { name: "⤢ Open node view" }).click();
    const view = page.getByRole("dialog", { name: /check/ });
    const input = view.getByRole("region", { name: "Input", exact: true });
    const parameters = view.getByRole("region", { name: "Settings" });
    const output = view.getByRole("region", { name: "Output", exact: true });
    await input.getByRole("button", { name: "total: insert its expression" }).waitFor();
    const [a, b, c] = [await input.boundingBox(), await parameters.boundingBox(), await output.boundingBox()];
    // Side by side, left to right, on one row.
    expect(a!.x + a!.width).toBeLessThanOrEqual(b!.x + 1);
    expect(b!.x + b!.width).toBeLessThanOrEqual(c!.x + 1);
    expect(Math.abs(a!.y - c!.y)).toBeLessThan(2);
    await output.getByText("Output items").waitFor();

    // Highlighted, and previewed with the first input item (total 120) by the API.
    await condition().locator(".cm-expr-name", { hasText: "item" }).waitFor();
    await condition().locator(".cm-expr-number", { hasText: "100" }).waitFor();
    await preview().getByText("true", { exact: true }).waitFor();
    await preview().getByText("Result for the first input item of the last run:").waitFor();

    // Completion of item. with the last run's field names.
    await retype("{{ item.");
    // Each with its value in the run; CodeMirror sorts them by name.
    const options = page.locator(".cm-tooltip-autocomplete li");
    await expect.poll(() => options.allTextContents()).toEqual(['name"Ann"', "total120"]);
    await shot(page, "node-view");
    // CodeMirror ignores a key that accepts a completion in the first 75 ms after the list
    // opens (its interactionDelay): without the screenshot's pause, Enter came too soon.
    await page.waitForTimeout(250);
    await page.keyboard.press("Enter");
    await expect.poll(() => conditionText().textContent()).toBe("{{ item.name}}");
    await preview().getByText('"Ann"').waitFor();

    // An error is marked at its character and said under the field.
    await retype("{{ item.total + secret");
    await expect.poll(() => conditionText().textContent()).toBe("{{ item.total + secret}}");
    await view.getByText(/⚠ unknown name 'secret'/).waitFor();
    expect(await condition().locator(".cm-expr-error").textContent()).toBe("s");
    expect(await seriousViolations(page)).toEqual([]);

    // A click on a field of the input inserts its expression where the cursor was.
    await retype("{{ ");
    await input.getByRole("button", { name: "total: insert its expression" }).click();
    await expect.poll(() => conditionText().textContent()).toBe("{{ item.total}}");
    await conditionText().click();
    await page.keyboard.press("End");
    await page.keyboard.press("ArrowLeft");
    await page.keyboard.press("ArrowLeft");
    await page.keyboard.type(" > 100 ");
    await expect.poll(() => conditionText().textContent()).toBe("{{ item.total > 100 }}");
    await preview().getByText("true", { exact: true }).waitFor();

    // A parent's output inserts a nodes[...] expression.
    await view.locator("summary", { hasText: "Output of" }).click();
    await conditionText().click();
    await page.keyboard.press("End");
    await page.keyboard.type(" and ");
    // The cursor is after "}}": the field gets a second {{ }} there.
    await view.getByRole("region", { name: "Output of start" }).getByRole("button", { name: "name: insert its expression" }).click();
    await expect.poll(() => conditionText().textContent()).toBe('{{ item.total > 100 }} and {{ nodes["start"].main[0].name }}');
    await preview().getByText('"true and Ann"').waitFor();

    await retype("{{ item.total > 100 ");
    await expect.poll(() => conditionText().textContent()).toBe("{{ item.total > 100 }}");
    await view.getByRole("button", { name: "Close node view" }).click();
    await view.waitFor({ state: "detached" });
    await page.keyboard.press("Control+s");
    await expect
      .poll(async () => (await apiGet(`/api/workflows/${id}`)).nodes.find((n: any) => n.id === "check").parameters.condition)
      .toBe("{{ item.total > 100 }}");
  });

  it("turns a plain field into an expression with ƒx", async () => {
    const id = await createWorkflow({
      name: `Plain field${RUN}`,
      nodes: [
        { id: "start", type: "manual_trigger", position: { x: 0, y: 0 } },
        { id: "fetch", type: "http_request", parameters: { url: "http://127.0.0.1:9/" }, position: { x: 300, y: 0 } },
      ],
      connections: [{ from: "start", to: "fetch" }],
    });
    await page.goto(`${baseUrl}/workflows/${id}`);
    await node("fetch").click();
    const url = page.locator("#node-fetch-param-url");
    expect(await url.inputValue()).toBe("http://127.0.0.1:9/");
    await page.getByRole("button", { name: "ƒx: write URL as an expression" }).click();
    const editor = page.getByTestId("node-fetch-param-url-expression").locator(".cm-content");
    await expect.poll(() => editor.textContent()).toBe("http://127.0.0.1:9/{{  }}");
    // The cursor is between the new braces.
    await page.keyboard.type('"x"');
    await expect.poll(() => editor.textContent()).toBe('http://127.0.0.1:9/{{ "x" }}');
    await page.locator("#node-fetch-param-url-preview").getByText('"http://127.0.0.1:9/x"').waitFor();
    await page.locator("#node-fetch-param-url-preview").getByText("Result (no input recorded yet: item is {}):").waitFor();
  });

  it("stacks the node view on a phone, without sideways scrolling", async () => {
    const phone = await keyedContext(browser, true);
    const small = await watchedPage(phone, pageErrors);
    try {
      const id = await createWorkflow(branching("Phone view"));
      await small.goto(`${baseUrl}/workflows/${id}`);
      await small.getByTestId("node-check").tap();
      await small.getByRole("button", { name: "⤢ Open node view" }).tap();
      const view = small.getByRole("dialog", { name: /check/ });
      await small.getByTestId("node-check-param-condition-expression").locator(".cm-content").waitFor();
      const boxes = await Promise.all(
        ["Input", "Settings", "Output"].map((name) => view.getByRole("region", { name, exact: true }).boundingBox()),
      );
      // One under the other, each the view's width.
      expect(boxes[0]!.y + boxes[0]!.height).toBeLessThanOrEqual(boxes[1]!.y + 1);
      expect(boxes[1]!.y + boxes[1]!.height).toBeLessThanOrEqual(boxes[2]!.y + 1);
      for (const box of boxes) expect(box!.width).toBeGreaterThan(350);
      expect(await small.evaluate(() => document.scrollingElement!.scrollWidth <= window.innerWidth)).toBe(true);
      expect(await small.evaluate(() => document.querySelector(".node-view")!.scrollWidth <= window.innerWidth)).toBe(true);
      await view.getByRole("button", { name: "Close node view" }).tap();
      await view.waitFor({ state: "detached" });
    } finally {
      await phone.close();
    }
  });
});
