import { describe, expect, it } from "vitest";
import { parseRoute, routePath } from "./router";

describe("routes", () => {
  it("reads and writes the credentials page's path", () => {
    expect(parseRoute("/credentials")).toEqual({ page: "credentials" });
    expect(parseRoute("/credentials/")).toEqual({ page: "credentials" });
    expect(routePath({ page: "credentials" })).toBe("/credentials");
    expect(parseRoute("/workflows/w1")).toEqual({ page: "workflow", workflowId: "w1", executionId: null });
  });

  it("reads and writes the executions page's path", () => {
    expect(parseRoute("/executions")).toEqual({ page: "executions" });
    expect(routePath({ page: "executions" })).toBe("/executions");
  });
});
