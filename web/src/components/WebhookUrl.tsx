// The URL that runs a webhook trigger, with a button that copies it. A node not saved yet has
// no URL: the API answers 404 for it until the workflow is saved with it.
import { useRef, useState } from "react";

export function WebhookUrl({ id, url }: { id: string; url: string | null }) {
  const [status, setStatus] = useState("");
  const input = useRef<HTMLInputElement>(null);
  if (!url)
    return (
      <p className="muted">
        Save the workflow to get this webhook’s URL.
      </p>
    );
  async function copy() {
    try {
      await navigator.clipboard.writeText(url!);
      setStatus("Copied.");
    } catch {
      // No clipboard API (a page served over plain http to another host) or no permission:
      // select the URL so that Ctrl+C copies it.
      input.current?.select();
      setStatus("Selected: press Ctrl+C to copy.");
    }
  }
  return (
    <div className="field">
      <label htmlFor={id}>Webhook URL</label>
      <div className="inline-field">
        <input id={id} ref={input} readOnly value={url} onFocus={(e) => e.currentTarget.select()} />
        <button type="button" onClick={() => void copy()}>
          Copy URL
        </button>
      </div>
      <span role="status" className="muted">
        {status}
      </span>
    </div>
  );
}
