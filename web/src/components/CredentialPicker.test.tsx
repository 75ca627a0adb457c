import { fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import type { NodeDef, NodeType } from "../types";
import { credential, fakeApi } from "./credentialFixtures";
import { NodeSettings, type NodeTools } from "./NodeSettings";

const httpType: NodeType = {
  type: "http_request",
  display_name: "HTTP request",
  category: "action",
  parameters_schema: {
    type: "object",
    required: ["url"],
    properties: {
      url: { type: "string", title: "Url" },
      credential: {
        anyOf: [{ type: "string", pattern: "^[A-Za-z0-9_-]{1,64}$" }, { type: "null" }],
        default: null,
        title: "Credential",
        description: "the id of one of your credentials",
      },
    },
  },
  outputs: ["main"],
};

function settings(def: NodeDef, api: NodeTools["api"]) {
  const onChange = vi.fn();
  render(
    <NodeSettings
      def={def}
      type={httpType}
      problems={[]}
      takenIds={[]}
      readOnly={false}
      onChange={onChange}
      onRename={() => undefined}
      onDelete={() => undefined}
      tools={{ api, testRun: () => undefined, canTestRun: true, runError: null, runId: null }}
    />,
  );
  return onChange;
}

const DEF: NodeDef = { id: "call", type: "http_request", parameters: { url: "https://a" } };

describe("the credential picker of http_request", () => {
  it("offers the user's credentials by name and stores the id", async () => {
    const { api } = fakeApi([credential(), credential({ id: "cred-2", name: "GitHub", type: "bearer_token" })]);
    const onChange = settings(DEF, api);
    const select = screen.getByLabelText(/^Credential/);
    await within(select).findByText("GitHub (Bearer token)");
    expect(within(select).getByText("Shop (Basic auth)")).toBeTruthy();
    fireEvent.change(select, { target: { value: "cred-2" } });
    expect(onChange).toHaveBeenLastCalledWith({ ...DEF, parameters: { url: "https://a", credential: "cred-2" } });
    fireEvent.change(select, { target: { value: "" } });
    expect(onChange).toHaveBeenLastCalledWith({ ...DEF, parameters: { url: "https://a" } });
  });

  it("keeps showing an id that is no longer one of the user's credentials", async () => {
    const { api } = fakeApi([credential()]);
    settings({ ...DEF, parameters: { url: "https://a", credential: "gone-1" } }, api);
    expect(await screen.findByText("unknown credential gone-1")).toBeTruthy();
    expect(screen.getByLabelText(/^Credential/)).toHaveProperty("value", "gone-1");
  });

  it("creates a new one in place and selects it once saved", async () => {
    const { api, mocks } = fakeApi([credential()]);
    mocks.createCredential.mockResolvedValueOnce(credential({ id: "cred-new", name: "GitHub", type: "bearer_token" }));
    const onChange = settings(DEF, api);
    const select = screen.getByLabelText(/^Credential/);
    await within(select).findByText("Shop (Basic auth)");
    fireEvent.change(select, { target: { value: "create new" } });
    const dialog = screen.getByRole("dialog", { name: "New credential" });
    fireEvent.change(within(dialog).getByLabelText(/^Name/), { target: { value: "GitHub" } });
    fireEvent.change(within(dialog).getByLabelText(/^Token/), { target: { value: "ghp_x" } });
    fireEvent.click(within(dialog).getByRole("button", { name: "Create credential" }));
    await waitFor(() => expect(screen.queryByRole("dialog")).toBeNull());
    expect(mocks.createCredential).toHaveBeenCalledWith({ type: "bearer_token", name: "GitHub", data: { token: "ghp_x" } });
    expect(onChange).toHaveBeenLastCalledWith({ ...DEF, parameters: { url: "https://a", credential: "cred-new" } });
    expect(within(select).getByText("GitHub (Bearer token)")).toBeTruthy();
  });

  it("leaves the selection as it was when the new one is cancelled", async () => {
    const { api } = fakeApi([credential()]);
    const onChange = settings({ ...DEF, parameters: { url: "https://a", credential: "cred-1" } }, api);
    const select = screen.getByLabelText(/^Credential/);
    await within(select).findByText("Shop (Basic auth)");
    fireEvent.change(select, { target: { value: "create new" } });
    fireEvent.click(within(screen.getByRole("dialog")).getByRole("button", { name: "Cancel" }));
    expect(screen.queryByRole("dialog")).toBeNull();
    expect(onChange).not.toHaveBeenCalled();
    expect(select).toHaveProperty("value", "cred-1");
  });
});
