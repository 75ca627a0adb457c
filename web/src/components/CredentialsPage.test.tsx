import { fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { ApiError } from "../api";
import { credential, fakeApi } from "./credentialFixtures";
import { CredentialsPage } from "./CredentialsPage";

function page(api: Parameters<typeof CredentialsPage>[0]["api"]) {
  return render(<CredentialsPage api={api} onSignOut={() => undefined} />);
}

describe("CredentialsPage", () => {
  it("lists the credentials with their type and where each was last used", async () => {
    const { api } = fakeApi([
      credential({ last_used: { at: "2026-12-02T08:00:00Z", execution_id: "exec-9", node: "issues" } }),
      credential({ id: "cred-2", name: "GitHub", type: "bearer_token", fields: {}, secrets: { token: "****3f9a" } }),
    ]);
    page(api);
    const shop = (await screen.findByText("Shop")).closest("tr")!;
    expect(within(shop).getByText("Basic auth")).toBeTruthy();
    expect(within(shop).getByText("issues")).toBeTruthy();
    expect(within(shop).getByText("exec-9")).toBeTruthy();
    const github = screen.getByText("GitHub").closest("tr")!;
    expect(within(github).getByText("never")).toBeTruthy();
    // A secret is never on the page, not even masked, in the list.
    expect(screen.queryByText(/3f9a/)).toBeNull();
  });

  it("creates one, showing the API's 422 under the field it names", async () => {
    const { api, mocks } = fakeApi([]);
    mocks.createCredential.mockRejectedValueOnce(
      new ApiError(422, "data.token: Field required", [{ loc: ["body", "data", "token"], msg: "Field required", type: "missing" }]),
    );
    mocks.createCredential.mockResolvedValueOnce(credential({ id: "cred-new", type: "bearer_token", name: "GitHub" }));
    page(api);
    await screen.findByText("No credentials yet.");
    fireEvent.click(screen.getByRole("button", { name: "+ New credential" }));
    fireEvent.change(screen.getByLabelText("Type"), { target: { value: "bearer_token" } });
    fireEvent.change(screen.getByLabelText(/^Name/), { target: { value: " GitHub " } });
    fireEvent.click(screen.getByRole("button", { name: "Create credential" }));

    const token = screen.getByLabelText(/^Token/);
    await waitFor(() => expect(token.getAttribute("aria-invalid")).toBe("true"));
    expect(token.getAttribute("type")).toBe("password");
    expect(mocks.createCredential).toHaveBeenLastCalledWith({ type: "bearer_token", name: "GitHub", data: {} });
    const described = document.getElementById(token.getAttribute("aria-describedby")!.split(" ").pop()!);
    expect(described?.textContent).toContain("Field required");

    fireEvent.change(token, { target: { value: "ghp_secret" } });
    fireEvent.click(screen.getByRole("button", { name: "Create credential" }));
    await waitFor(() => expect(screen.queryByRole("form", { name: "New credential" })).toBeNull());
    expect(mocks.createCredential).toHaveBeenLastCalledWith({ type: "bearer_token", name: "GitHub", data: { token: "ghp_secret" } });
    expect(mocks.listCredentials).toHaveBeenCalledTimes(2);
  });

  it("shows a duplicate name (409) under the name", async () => {
    const { api, mocks } = fakeApi([]);
    mocks.createCredential.mockRejectedValueOnce(new ApiError(409, "you already have a credential named 'GitHub'"));
    page(api);
    await screen.findByText("No credentials yet.");
    fireEvent.click(screen.getByRole("button", { name: "+ New credential" }));
    fireEvent.change(screen.getByLabelText(/^Name/), { target: { value: "GitHub" } });
    fireEvent.click(screen.getByRole("button", { name: "Create credential" }));
    await waitFor(() => expect(screen.getByLabelText(/^Name/).getAttribute("aria-invalid")).toBe("true"));
    expect(screen.getByText(/already have a credential named/)).toBeTruthy();
  });

  it("edits one and keeps a secret left blank (the PUT leaves it out)", async () => {
    const stored = credential({ secrets: { password: "****" } });
    const { api, mocks } = fakeApi([stored]);
    mocks.updateCredential.mockResolvedValueOnce(credential({ fields: { username: "bob" } }));
    page(api);
    fireEvent.click(await screen.findByRole("button", { name: "Edit Shop" }));
    expect(screen.getByLabelText("Type")).toHaveProperty("disabled", true);
    const password = screen.getByLabelText(/^Password/);
    expect(password).toHaveProperty("value", "");
    expect(password.getAttribute("placeholder")).toBe("stored: **** (leave blank to keep)");
    fireEvent.change(screen.getByLabelText(/^Username/), { target: { value: "bob" } });
    fireEvent.click(screen.getByRole("button", { name: "Save credential" }));
    await waitFor(() =>
      expect(mocks.updateCredential).toHaveBeenCalledWith("cred-1", { type: "basic_auth", name: "Shop", data: { username: "bob" } }),
    );
  });

  it("deletes one after asking", async () => {
    const { api, mocks } = fakeApi([credential()]);
    page(api);
    fireEvent.click(await screen.findByRole("button", { name: "Delete Shop" }));
    expect(mocks.deleteCredential).not.toHaveBeenCalled();
    expect(screen.getByText(/Nodes that name it will fail/)).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Yes, delete" }));
    await waitFor(() => expect(mocks.deleteCredential).toHaveBeenCalledWith("cred-1"));
    await waitFor(() => expect(mocks.listCredentials).toHaveBeenCalledTimes(2));
  });
});
