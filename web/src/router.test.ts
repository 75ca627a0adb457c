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

  it("reads and writes an execution's path by id alone", () => {
    expect(parseRoute("/executions/e%201")).toEqual({ page: "execution", executionId: "e 1" });
    expect(routePath({ page: "execution", executionId: "e 1" })).toBe("/executions/e%201");
  });
});
