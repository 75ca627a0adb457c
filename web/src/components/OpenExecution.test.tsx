import { render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import type { Api } from "../api";
import type { Execution } from "../types";
import { OpenExecution } from "./OpenExecution";

function apiAnswering(execution: Partial<Execution>): Api {
  return { getExecution: async () => execution as Execution } as unknown as Api;
}

describe("OpenExecution", () => {
  afterEach(() => history.replaceState(null, "", "/"));

  it("opens the execution in its saved workflow's editor", async () => {
    history.replaceState(null, "", "/executions/p1");
    render(<OpenExecution api={apiAnswering({ id: "p1", workflow_id: "wf1" })} executionId="p1" />);
    await waitFor(() => expect(location.pathname).toBe("/workflows/wf1/executions/p1"));
  });

  it("says so for an execution of a workflow that was not saved", async () => {
    render(<OpenExecution api={apiAnswering({ id: "p2", workflow_id: null })} executionId="p2" />);
    expect(await screen.findByRole("alert")).toBeTruthy();
    expect(screen.getByRole("alert").textContent).toMatch(/was not saved/);
  });
});
