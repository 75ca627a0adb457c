// The shapes of the nodedrop API (docs/nodes.md, docs/api.md) that the UI reads and writes.

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type Item = Record<string, JsonValue>;
export type PortItems = Record<string, Item[]>;

export interface RetryPolicy {
  max_attempts?: number;
  initial_interval_ms?: number;
  backoff_coefficient?: number;
  max_interval_ms?: number;
  non_retryable_errors?: string[];
}

export type OnError = "fail" | "continue" | "error_output";

export interface NodeDef {
  id: string;
  type: string;
  name?: string;
  parameters?: Record<string, JsonValue>;
  retry?: RetryPolicy;
  timeout_ms?: number;
  on_error?: OnError;
  pinned_output?: PortItems;
  position?: { x: number; y: number };
}

export interface ConnectionDef {
  from: string;
  to: string;
  output?: string;
  input?: string;
}

/** A workflow's ``settings`` (the contract's ``Settings``). The editor has no form for them:
 * it keeps what it loaded and sends it back unchanged. */
export interface WorkflowSettings {
  /** The time limit of one execution, in ms. */
  timeout_ms?: number;
  /** At most this many executions of the workflow (from its triggers) run at once (1..1000);
   * more wait, queued, in the order they come. Absent: no limit. */
  max_concurrent?: number;
  [key: string]: JsonValue | undefined;
}

export interface WorkflowDef {
  name: string;
  nodes: NodeDef[];
  connections: ConnectionDef[];
  settings?: WorkflowSettings;
}

export interface Workflow extends WorkflowDef {
  id: string;
  version: number;
  owner?: string;
  created_at?: string;
  updated_at?: string;
  /** What a run would refuse, ``loc`` within the definition: a draft may be saved with
   * problems (``?draft=true``); only running it needs none. Absent in lists. */
  problems?: ValidationIssue[];
}

export interface JsonSchema {
  type?: string | string[];
  title?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  enum?: JsonValue[];
  default?: JsonValue;
  anyOf?: JsonSchema[];
  items?: JsonSchema;
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  minimum?: number;
  maximum?: number;
  additionalProperties?: boolean | JsonSchema;
  [key: string]: unknown;
}

export interface NodeType {
  type: string;
  display_name: string;
  category: "trigger" | "action" | "flow";
  description?: string;
  parameters_schema: JsonSchema;
  outputs: string[];
}

export type NodeStatus =
  | "pending"
  | "queued"
  | "running"
  | "retrying"
  | "succeeded"
  | "failed"
  | "skipped"
  | "cancelled";

export type ExecutionStatus =
  | "queued"
  | "running"
  | "succeeded"
  | "partial"
  | "failed"
  | "cancelled"
  | "timed_out";

export interface ErrorInfo {
  type: string;
  message: string;
  stack?: string | null;
}

export interface NodeExecution {
  status: NodeStatus;
  attempts: number;
  started_at: string | null;
  finished_at: string | null;
  output: PortItems | null;
  error: ErrorInfo | null;
  skip_reason: string | null;
  pinned?: boolean;
  /** A node failed for good: the scheduler's outcome (its ``NodeFailureHandled``). */
  outcome?: FailureOutcome | null;
}

/** What the scheduler made of a failed attempt (``NodeFailureHandled.outcome``). */
export type FailureOutcome = "again" | "retry" | "fail" | "continue" | "error_output";

export interface ExecutionSummary {
  id: string;
  workflow_id: string | null;
  workflow_version: number | null;
  mode: "trigger" | "node";
  trigger: string | null;
  node: string | null;
  status: ExecutionStatus;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  error: ErrorInfo | null;
  last_seq: number;
  /** The execution this one reran (POST /api/executions/{id}/rerun). */
  rerun_of?: string | null;
}

export interface Execution extends ExecutionSummary {
  nodes: Record<string, NodeExecution>;
}

export interface ExecutionEvent {
  seq: number;
  type: string;
  time: string;
  execution_id: string;
  node: string | null;
  attempt: number | null;
  data: Record<string, any>;
}

export interface LogEntry {
  seq?: number;
  time: string;
  level: string;
  node: string | null;
  message: string;
}

export interface ValidationIssue {
  loc: (string | number)[];
  msg: string;
  type?: string;
  /** An expression's error: the characters of the template it is about. */
  ctx?: { start?: number; end?: number };
}

export const FINAL_EXECUTION_STATUSES: ReadonlySet<string> = new Set([
  "succeeded",
  "partial",
  "failed",
  "cancelled",
  "timed_out",
]);

/** Where a runner last used a credential (docs/api.md, "Credentials"). */
export interface CredentialUse {
  at: string;
  execution_id: string | null;
  node: string | null;
}

/** A credential as the API answers it: secret fields only ever masked ("****3f9a"). */
export interface Credential {
  id: string;
  type: string;
  name: string;
  owner: string;
  /** The readable fields. */
  fields: Record<string, JsonValue>;
  /** Each secret field, masked (a map's values each masked). */
  secrets: Record<string, JsonValue>;
  created_at: string;
  updated_at: string;
  last_used: CredentialUse | null;
}

export interface CredentialType {
  type: string;
  display_name: string;
  description: string;
  /** JSON Schema of the fields; the secret ones are ``writeOnly``. */
  fields_schema: JsonSchema;
  secret_fields: string[];
}

/** What POST /api/credentials takes; PUT takes the same without changing ``type``. */
export interface CredentialInput {
  type: string;
  name: string;
  data: Record<string, JsonValue>;
}
