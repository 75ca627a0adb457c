import { useState, type FormEvent } from "react";
import { Api, ApiError } from "../api";
import type { NodeType } from "../types";

export function SignIn({ onSignedIn }: { onSignedIn: (key: string, types: NodeType[]) => void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      // Any authenticated read tells whether the key is good.
      const types = await new Api(key.trim()).nodeTypes();
      onSignedIn(key.trim(), types);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? "This API key was not accepted." : String((err as Error).message));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="centered">
      <form className="card signin" onSubmit={submit}>
        <h1>
          <span className="logo" aria-hidden="true">◆</span> nodedrop
        </h1>
        <p>Sign in with an API key to build and run workflows.</p>
        <label htmlFor="api-key">API key</label>
        <input
          id="api-key"
          type="password"
          autoComplete="current-password"
          autoFocus
          value={key}
          onChange={(e) => setKey(e.target.value)}
          required
        />
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button className="primary" type="submit" disabled={busy || !key.trim()}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <p className="hint">
          The admin key is printed by <code>make run</code> (<code>nodedrop up</code>) and kept in{" "}
          <code>.nodedrop/admin_token</code>. The key stays in this browser tab only.
        </p>
      </form>
    </main>
  );
}
