// A thin client for the REST API: every request carries the signed-in key as a Bearer token.
import type {
  ConnectionDef,
  Credential,
  CredentialInput,
  CredentialType,
  Execution,
  ExecutionEvent,
  ExecutionStatus,
  ExecutionSummary,
  LogEntry,
  NodeType,
  PortItems,
  ValidationIssue,
  Workflow,
  WorkflowDef,
  Item,
  JsonValue,
} from "./types";

const KEY_STORAGE = "nodedrop.apiKey";

export function storedKey(): string | null {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function storeKey(key: string | null): void {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** FastAPI's 422 items, when the API named the problems. */
    readonly issues: ValidationIssue[] = [],
    /** The latest version, on a 409 to a save based on an older one. */
    readonly currentVersion: number | null = null,
  ) {
    super(message);
  }
}

function describe(status: number, detail: unknown): string {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail))
    return detail.map((d: ValidationIssue) => `${(d.loc ?? []).join(".")}: ${d.msg}`).join("; ");
  if (status === 401) return "The API key was not accepted.";
  return `HTTP ${status}`;
}

export class Api {
  constructor(
    readonly key: string,
    private readonly base = "",
  ) {}

  async request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    let response: Response;
    try {
      response = await fetch(this.base + path, {
        method,
        headers: {
          Authorization: `Bearer ${this.key}`,
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError(0, `The API cannot be reached (${String(error)}).`);
    }
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    let parsed: any = undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    if (!response.ok) {
      const detail = parsed?.detail ?? parsed;
      throw new ApiError(
        response.status,
        describe(response.status, detail),
        Array.isArray(detail) ? detail : [],
        typeof parsed?.current_version === "number" ? parsed.current_version : null,
      );
    }
    return parsed as T;
  }

  nodeTypes() {
    return this.request<{ items: NodeType[] }>("GET", "/api/node-types").then((r) => r.items);
  }
  listWorkflows() {
    return this.request<{ items: Workflow[]; next_cursor: string | null }>(
      "GET",
      "/api/workflows?limit=200",
    );
  }
  getWorkflow(id: string) {
    return this.request<Workflow>("GET", `/api/workflows/${encodeURIComponent(id)}`);
  }
  /** Saved as a draft: a definition with problems is stored, its ``problems`` answered. */
  createWorkflow(def: WorkflowDef) {
    return this.request<Workflow>("POST", "/api/workflows?draft=true", def);
  }
  /** Saves a new version if ``baseVersion`` is still the latest (else a 409 with the
   * latest as ``currentVersion``): a save never undoes someone else's unseen. A draft: a
   * definition with problems is saved too, and its ``problems`` answered. */
  saveWorkflow(id: string, def: WorkflowDef, baseVersion: number) {
    return this.request<Workflow>("PUT", `/api/workflows/${encodeURIComponent(id)}?draft=true`, def, {
      "If-Match": `"${baseVersion}"`,
    });
  }
  deleteWorkflow(id: string) {
    return this.request<void>("DELETE", `/api/workflows/${encodeURIComponent(id)}`);
  }
  runTrigger(workflowId: string, trigger: string, input?: Item[]) {
    return this.request<{ id: string }>("POST", "/api/executions", {
      workflow_id: workflowId,
      mode: "trigger",
      trigger,
      ...(input === undefined ? {} : { input }),
    });
  }
  runNode(workflowId: string, node: string, input?: PortItems) {
    return this.request<{ id: string }>("POST", "/api/executions", {
      workflow_id: workflowId,
      mode: "node",
      node,
      ...(input === undefined ? {} : { input }),
    });
  }
  /** A parameter's template rendered by the API's evaluator for one item (a 422 at
   * ``template`` with ``ctx.start``/``ctx.end`` when it fails). */
  previewExpression(template: string, scope: { item?: Item; nodes?: Record<string, PortItems>; execution?: Record<string, string> }) {
    return this.request<{ value: JsonValue }>("POST", "/api/expressions/preview", { template, ...scope });
  }
  getExecution(id: string) {
    return this.request<Execution>("GET", `/api/executions/${encodeURIComponent(id)}`);
  }
  /** A page of executions, newest first: of one workflow or of all, of one status or any;
   * ``cursor`` is the previous page's ``next_cursor``. */
  listExecutions(query: { workflowId?: string; status?: ExecutionStatus; cursor?: string | null; limit?: number }) {
    const params = new URLSearchParams({ limit: String(query.limit ?? 50) });
    if (query.workflowId) params.set("workflow_id", query.workflowId);
    if (query.status) params.set("status", query.status);
    if (query.cursor) params.set("cursor", query.cursor);
    return this.request<{ items: ExecutionSummary[]; next_cursor: string | null }>("GET", `/api/executions?${params}`);
  }
  /** Runs a finished execution again from ``fromNode``, reusing what it recorded before it
   * (docs/api.md, "Reruns"). */
  rerun(id: string, fromNode: string) {
    return this.request<{ id: string; rerun_of: string }>("POST", `/api/executions/${encodeURIComponent(id)}/rerun`, {
      from_node: fromNode,
    });
  }
  cancel(id: string) {
    return this.request<unknown>("POST", `/api/executions/${encodeURIComponent(id)}/cancel`);
  }
  events(id: string, afterSeq = 0) {
    return this.request<{ events: ExecutionEvent[] }>(
      "GET",
      `/api/executions/${encodeURIComponent(id)}/events?after_seq=${afterSeq}`,
    ).then((r) => r.events);
  }
  listCredentials() {
    // 200 is the API's page limit; a user with more would need paging (not yet).
    return this.request<{ items: Credential[]; next_cursor: string | null }>(
      "GET",
      "/api/credentials?limit=200",
    ).then((r) => r.items);
  }
  credentialTypes() {
    return this.request<{ items: CredentialType[] }>("GET", "/api/credential-types").then((r) => r.items);
  }
  createCredential(input: CredentialInput) {
    return this.request<Credential>("POST", "/api/credentials", input);
  }
  /** Replaces the name and the readable fields; a secret field left out of ``data`` keeps its
   * stored value. */
  updateCredential(id: string, input: CredentialInput) {
    return this.request<Credential>("PUT", `/api/credentials/${encodeURIComponent(id)}`, input);
  }
  deleteCredential(id: string) {
    return this.request<void>("DELETE", `/api/credentials/${encodeURIComponent(id)}`);
  }
  logs(id: string) {
    return this.request<{ logs: LogEntry[] }>(
      "GET",
      `/api/executions/${encodeURIComponent(id)}/logs`,
    ).then((r) => r.logs);
  }
}

/** The WebSocket URL of an execution's events, on the page's own host. It holds no key: that
 * goes in the subprotocols (eventsSocketProtocols), as URLs end up in logs. */
export function eventsSocketUrl(executionId: string, afterSeq: number): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = new URLSearchParams({ after_seq: String(afterSeq) });
  return `${scheme}//${location.host}/ws/executions/${encodeURIComponent(executionId)}?${query}`;
}

/** The subprotocols a WebSocket of the API offers: "nodedrop" (which the server accepts) and
 * "nodedrop.key.<the key in base64url>" (the one header a page may set on a WebSocket). */
export function eventsSocketProtocols(key: string): string[] {
  const bytes = new TextEncoder().encode(key);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 1) binary += String.fromCharCode(bytes[i]);
  const encoded = btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return ["nodedrop", `nodedrop.key.${encoded}`];
}

export type { ConnectionDef };
