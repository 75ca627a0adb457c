// The workflow editor: palette, canvas, side panel (settings and results), run bar and the
// bottom panel (log, executions, timeline).
import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  addEdge,
  applyNodeChanges,
  MarkerType,
  useEdgesState,
  useNodesState,
  useReactFlow,
  type Connection,
  type Edge,
  type EdgeChange,
  type NodeChange,
} from "@xyflow/react";
import { useCallback, useEffect, useMemo, useRef, useState, type DragEvent } from "react";
import { ApiError, eventsSocketProtocols, eventsSocketUrl, type Api } from "../api";
import {
  emptyIssues,
  freeOutputPort,
  initialParameters,
  itemsOnPort,
  mapIssues,
  newNodeId,
  outputPorts,
  toCanvas,
  toDefinition,
  toEdge,
  type CanvasNode,
  type Issues,
} from "../graph";
import { navigate, setLeaveGuard } from "../router";
import { applyEvent, applyEvents, emptyRun, isFinished, type RunState } from "../state/executionState";
import { ExecutionStream, type ConnectionState } from "../state/liveStream";
import type { ExecutionEvent, Item, NodeDef, NodeType, PortItems, ValidationIssue, Workflow, WorkflowDef } from "../types";
import { problemCount, runProblems } from "../problems";
import { keptBeforeNodeRun, withEarlierStates } from "../earlierStates";
import { cycleText, findCycle, withCycle } from "../cycles";
import { ContextMenu } from "./ContextMenu";
import { EditorContext, type EditorContextValue } from "./EditorContext";
import { HistoryPanel } from "./HistoryPanel";
import { LogPanel } from "./LogPanel";
import { NodeCard } from "./NodeCard";
import { NodeResults } from "./NodeResults";
import { NodeSettings } from "./NodeSettings";
import { Palette, PALETTE_MIME } from "./Palette";
import { RunBar } from "./RunBar";
import { TimelinePanel } from "./TimelinePanel";
import { TopBar } from "./TopBar";
import { InputDialog } from "./InputDialog";
import { NodeView } from "./NodeView";
import { NodeStatusBadge } from "./StatusBadge";
import { TriggerInputDialog } from "./TriggerInputDialog";
import { nodePanelData } from "../nodePanelData";
import { ParentsFirstDialog } from "./ParentsFirstDialog";
import { PinnedOutputEditor } from "./PinnedOutputEditor";
import { RerunDialog, startRetry } from "./RerunDialog";
import { RETRYABLE, triggersUpstream } from "../rerun";
import { copyFragment, parseFragment, pasteFragment } from "../clipboard";
import { canRedo, canUndo, historyKey, historyReducer, startHistory, type History } from "../history";

const NODE_TYPES = { nd: NodeCard };
const MINIMAP_WIDTH = 150;
const MINIMAP_HEIGHT = 96;
const MINIMAP_COLORS: Record<string, string> = { succeeded: "#2b8a3e", failed: "#c92a2a", running: "#1971c2", retrying: "#e67700", queued: "#7048e8" };
/** Room around the nodes when the canvas is fitted: the band at the bottom holds the minimap
 * (right) and the controls (left), so neither covers a node. */
const FIT_PADDING = { top: "30px", left: "30px", right: "30px", bottom: `${MINIMAP_HEIGHT + 30}px` } as const;
const minimapColor = (status: string | undefined) => (status && MINIMAP_COLORS[status]) || "#adb5bd";

/** What undo and redo restore: the nodes and connections, without the canvas's selection. */
interface Draft {
  nodes: CanvasNode[];
  edges: Edge[];
}
const draftOf = (nodes: CanvasNode[], edges: Edge[]): Draft => ({
  nodes: nodes.map(({ selected: _s, dragging: _d, ...n }) => n),
  edges: edges.map(({ selected: _s, ...e }) => e),
});

/** Whether a key press belongs to a text field (its own undo, copy and paste). */
function inTextField(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  return !!el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));
}

/** The nodes shown selected: the one the side panel shows, and the others selected with it
 * (Shift+click, a selection box) while it is one of them. */
function selectedGroup(nodes: CanvasNode[], panelNode: string | null): Set<string> {
  const inGroup = nodes.some((n) => n.id === panelNode && n.selected);
  return new Set(nodes.filter((n) => n.id === panelNode || (inGroup && n.selected)).map((n) => n.id));
}

interface Shown {
  id: string;
  run: RunState;
  events: ExecutionEvent[];
}

type Toast = { kind: "ok" | "error" | "info"; text: string } | null;

interface Props {
  api: Api;
  nodeTypes: NodeType[];
  workflowId: string;
  executionId: string | null;
  onSignOut: () => void;
}

export function Editor(props: Props) {
  return (
    <ReactFlowProvider>
      <EditorInner {...props} />
    </ReactFlowProvider>
  );
}

function EditorInner({ api, nodeTypes, workflowId, executionId, onSignOut }: Props) {
  const types = useMemo(() => Object.fromEntries(nodeTypes.map((t) => [t.type, t])), [nodeTypes]);
  const flow = useReactFlow();
  const [workflow, setWorkflow] = useState<Workflow | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [nodes, setNodes, onNodesChangeBase] = useNodesState<CanvasNode>([]);
  const [edges, setEdges, onEdgesChangeBase] = useEdgesState<Edge>([]);
  const [dirty, setDirty] = useState(false);
  const [saving, setSaving] = useState(false);
  const [issues, setIssues] = useState<Issues>(emptyIssues());
  const [selected, setSelected] = useState<string | null>(null);
  const [sideTab, setSideTab] = useState<"settings" | "results">("settings");
  const [bottomTab, setBottomTab] = useState<"logs" | "history" | "timeline">("logs");
  const [toast, setToast] = useState<Toast>(null);
  const [menu, setMenu] = useState<{ nodeId: string; x: number; y: number } | null>(null);
  const [inputFor, setInputFor] = useState<string | null>(null);
  const [triggerInputFor, setTriggerInputFor] = useState<string | null>(null);
  const [nodeViewOpen, setNodeViewOpen] = useState(false);
  // The node view is of the selected node: it closes when nothing is selected (deleted, say).
  useEffect(() => {
    if (!selected) setNodeViewOpen(false);
  }, [selected]);
  /** "Rerun from a node" of the execution shown, opened on this node (or on none). */
  const [rerunFrom, setRerunFrom] = useState<{ node?: string } | null>(null);
  /** A node that could not run alone: its parents have no recorded output. */
  const [parentsFor, setParentsFor] = useState<{ node: string; reason: string; triggers: string[] } | null>(null);
  const [shown, setShown] = useState<Shown | null>(null);
  /** The states the canvas showed when a node was run alone: kept for the other nodes. */
  const [earlier, setEarlier] = useState<RunState | null>(null);
  const [snapshot, setSnapshot] = useState<{ nodes: CanvasNode[]; edges: Edge[] } | null>(null);
  const [connection, setConnection] = useState<{ state: ConnectionState; detail?: string } | null>(null);
  const [step, setStep] = useState<number | null>(null);
  const [cancelling, setCancelling] = useState(false);
  const [historyVersion, setHistoryVersion] = useState(0);
  /** A save refused because someone saved a newer version meanwhile: which one. */
  const [conflict, setConflict] = useState<number | null>(null);
  const [history, setHistory] = useState<History<Draft>>(() => startHistory({ nodes: [], edges: [] }));
  /** Set by an edit: the next change of nodes or edges is recorded as an undo step (with this
   * key, or none). Undefined: the change is not an edit (a load, an undo, a node measured). */
  const pendingStep = useRef<string | null | undefined>(undefined);
  const stream = useRef<ExecutionStream | null>(null);
  const canvasRef = useRef<HTMLDivElement>(null);
  const readOnly = executionId !== null;

  // ------------------------------------------------------------------ loading

  function showWorkflow(wf: Workflow) {
    setWorkflow(wf);
    setName(wf.name);
    const canvas = toCanvas(wf);
    setNodes(canvas.nodes);
    setEdges(canvas.edges);
    pendingStep.current = undefined;
    setHistory(startHistory(draftOf(canvas.nodes, canvas.edges)));
    setDirty(false);
    // A draft saved with problems shows them where they are, as a save would.
    setIssues(mapIssues(wf, wf.problems ?? []));
    setConflict(null);
    setTimeout(() => fitCanvas(), 50);
  }

  useEffect(() => {
    api.getWorkflow(workflowId).then(showWorkflow, (e: ApiError) =>
      setLoadError(e.status === 404 ? "This workflow does not exist (or is not yours)." : e.message),
    );
    return () => stream.current?.stop();
  }, [workflowId]);

  // Unsaved edits are not dropped without asking: closing or reloading the tab, and leaving
  // this workflow in the app (links, Back, Sign out). Past executions of this workflow keep
  // the draft, so going there does not ask.
  useEffect(() => {
    if (!dirty) return;
    const warn = (e: BeforeUnloadEvent) => e.preventDefault();
    window.addEventListener("beforeunload", warn);
    const removeGuard = setLeaveGuard((target) =>
      target?.page === "workflow" && target.workflowId === workflowId
        ? null
        : "This workflow has unsaved changes. Leave and discard them?",
    );
    return () => {
      window.removeEventListener("beforeunload", warn);
      removeGuard();
    };
  }, [dirty, workflowId]);

  // Every toast goes after a while, errors too (they stay longer); a newer outcome replaces
  // the one shown, so an old "Not saved" never stands next to a new save.
  useEffect(() => {
    if (!toast) return;
    const t = setTimeout(() => setToast(null), toast.kind === "info" ? 2500 : toast.kind === "ok" ? 4000 : 10_000);
    return () => clearTimeout(t);
  }, [toast]);

  // Ctrl+S (Cmd+S) saves wherever the focus is, even on the page itself, and never opens the
  // browser's "Save page as".
  // Ctrl+Z / Ctrl+Shift+Z / Ctrl+Y undo and redo canvas edits, except in a text field, which
  // keeps its own undo of the text typed.
  const saveRef = useRef<() => void>(() => undefined);
  const travelRef = useRef<(direction: "undo" | "redo") => void>(() => undefined);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && !e.altKey && e.key.toLowerCase() === "s") {
        e.preventDefault();
        saveRef.current();
        return;
      }
      const travel = historyKey(e);
      if (travel && !inTextField(e.target)) {
        e.preventDefault();
        travelRef.current(travel);
      }
    };
    // Copy and paste of nodes go through the page's clipboard events (Ctrl+C, Ctrl+V and the
    // browser's menu), which need no clipboard permission; a text field keeps its own.
    const onCopy = (e: ClipboardEvent) => {
      if (!inTextField(e.target) && e.clipboardData) clipboardRef.current.copy(e.clipboardData, e);
    };
    const onPaste = (e: ClipboardEvent) => {
      if (!inTextField(e.target) && e.clipboardData) clipboardRef.current.paste(e.clipboardData, e);
    };
    document.addEventListener("keydown", onKey);
    document.addEventListener("copy", onCopy);
    document.addEventListener("paste", onPaste);
    return () => {
      document.removeEventListener("keydown", onKey);
      document.removeEventListener("copy", onCopy);
      document.removeEventListener("paste", onPaste);
    };
  }, []);
  const clipboardRef = useRef({
    copy: (_data: DataTransfer, _e: Event) => undefined as void,
    paste: (_data: DataTransfer, _e: Event) => undefined as void,
  });

  /** After an action whose button went away or was disabled (a run, a menu item), focus goes
   * to the node it was about, else to the canvas, rather than to the page's body. A disabled
   * button counts as lost: Chromium moves the focus off it to the body a moment later. */
  function keepFocus(nodeId?: string | null) {
    setTimeout(() => {
      const active = document.activeElement as (HTMLElement & { disabled?: boolean }) | null;
      if (active && active !== document.body && active.isConnected && !active.disabled) return;
      const id = nodeId ?? null;
      const card = id ? document.querySelector<HTMLElement>(`.react-flow__node[data-id="${CSS.escape(id)}"]`) : null;
      (card ?? canvasRef.current)?.focus({ preventScroll: true });
    }, 60);
  }

  function fitCanvas(duration?: number) {
    flow.fitView({ maxZoom: 1.1, padding: FIT_PADDING, ...(duration ? { duration } : {}) });
  }

  // ------------------------------------------------------------------ executions

  const follow = useCallback(
    (id: string, initial: ExecutionEvent[]) => {
      stream.current?.stop();
      stream.current = null;
      const run = applyEvents(emptyRun(id), initial);
      setShown({ id, run, events: initial });
      setStep(null);
      setCancelling(false);
      setConnection(null);
      if (isFinished(run)) return;
      const s = new ExecutionStream({
        executionId: id,
        afterSeq: run.lastSeq,
        url: (exec, after) => eventsSocketUrl(exec, after),
        protocols: eventsSocketProtocols(api.key),
        onEvent: (event) => {
          setShown((prev) =>
            prev && prev.id === id ? { id, run: applyEvent(prev.run, event), events: [...prev.events, event] } : prev,
          );
          if (event.type === "ExecutionFinished") setHistoryVersion((v) => v + 1);
        },
        onConnection: (state, detail) => setConnection({ state, detail }),
      });
      stream.current = s;
      s.start();
    },
    [api],
  );

  // A past execution from the URL: its events, and the definition it ran with, read-only.
  useEffect(() => {
    // Nothing of the execution shown before stays on screen (over the draft, or while this
    // one loads).
    setSnapshot(null);
    stream.current?.stop();
    setShown(null);
    setEarlier(null);
    setStep(null);
    setConnection(null);
    if (!executionId) return;
    let live = true;
    api.events(executionId).then(
      (events) => {
        if (!live) return;
        const requested = events.find((e) => e.type === "ExecutionRequested");
        const def = requested?.data?.workflow as WorkflowDef | undefined;
        if (def) setSnapshot(toCanvas(def));
        follow(executionId, events);
        setTimeout(() => fitCanvas(), 50);
      },
      (e: ApiError) => setToast({ kind: "error", text: `Cannot open the execution: ${e.message}` }),
    );
    return () => {
      live = false;
    };
  }, [executionId]);

  const displayedRun = useMemo(() => {
    if (!shown) return null;
    if (step === null) return shown.run;
    return applyEvents(emptyRun(shown.id), shown.events.slice(0, step + 1));
  }, [shown, step]);
  const busy = shown !== null && !isFinished(shown.run);
  /** A cycle in the draft, found as it is edited: marked on its nodes and connections. */
  const cycle = useMemo(
    () => (readOnly ? null : findCycle(nodes.map((n) => n.id), edges.map((e) => ({ id: e.id, source: e.source, target: e.target })))),
    [nodes, edges, readOnly],
  );
  const shownIssues = useMemo(() => withCycle(issues, cycle), [issues, cycle]);
  /** What the canvas, the minimap, edge counts and a node's results show. */
  const canvasRun = useMemo(() => withEarlierStates(displayedRun, earlier), [displayedRun, earlier]);

  // The run bar takes height from the canvas when it appears: fit the nodes to what is left.
  const hasRunBar = displayedRun !== null;
  useEffect(() => {
    if (hasRunBar) setTimeout(() => fitCanvas(150), 50);
  }, [hasRunBar]);

  // ------------------------------------------------------------------ editing

  /** An edit of the canvas: marks the draft unsaved and makes it an undo step. ``step``: edits
   * with the same key in a row are one step (typing in one node's parameters). */
  const markDirty = (step?: string) => {
    pendingStep.current = step ?? null;
    setDirty(true);
  };

  useEffect(() => {
    const step = pendingStep.current;
    if (step === undefined) return;
    pendingStep.current = undefined;
    setHistory((h) => historyReducer(h, { type: "record", present: draftOf(nodes, edges), ...(step ? { key: step } : {}) }));
  }, [nodes, edges]);

  function travel(direction: "undo" | "redo") {
    if (readOnly) return;
    const next = historyReducer(history, { type: direction });
    if (next === history) return;
    pendingStep.current = undefined;
    setHistory(next);
    setNodes(next.present.nodes);
    setEdges(next.present.edges);
    setSelected((s) => (s && next.present.nodes.some((n) => n.id === s) ? s : null));
    setDirty(true);
  }

  const onNodesChange = useCallback(
    (changes: NodeChange<CanvasNode>[]) => {
      // The canvas's selection drives the side panel (clicking an edge or the pane clears it).
      for (const c of changes)
        if (c.type === "select") setSelected((s) => (c.selected ? c.id : s === c.id ? null : s));
      if (readOnly) {
        const kept = changes.filter((c) => c.type === "select" || c.type === "dimensions");
        // The nodes shown are the execution's own (its definition as it ran): their sizes go
        // there, or the minimap, which draws measured nodes only, stays empty.
        setSnapshot((s) => (s ? { ...s, nodes: applyNodeChanges(kept, s.nodes) } : s));
        onNodesChangeBase(kept);
        return;
      }
      onNodesChangeBase(changes);
      if (changes.some((c) => c.type === "remove" || (c.type === "position" && c.dragging === false))) markDirty();
      for (const c of changes) if (c.type === "remove") setSelected((s) => (s === c.id ? null : s));
    },
    [readOnly],
  );
  const onEdgesChange = useCallback(
    (changes: EdgeChange<Edge>[]) => {
      if (readOnly) return;
      onEdgesChangeBase(changes);
      if (changes.some((c) => c.type === "remove")) markDirty();
    },
    [readOnly],
  );
  const onConnect = useCallback(
    (c: Connection) => {
      if (readOnly) return;
      const edge = toEdge({ from: c.source, to: c.target, output: c.sourceHandle ?? "main", input: c.targetHandle ?? "main" });
      setEdges((es) => (es.some((e) => e.id === edge.id) ? es : addEdge(edge, es)));
      markDirty();
    },
    [readOnly],
  );

  function addNode(type: NodeType, at?: { x: number; y: number }) {
    if (readOnly) return;
    const id = newNodeId(type.type, nodes.map((n) => n.id));
    const from = selected ? nodes.find((n) => n.id === selected) : undefined;
    let position = at;
    if (!position && from) position = { x: from.position.x + 280, y: from.position.y };
    if (!position) {
      const right = nodes.reduce((m, n) => Math.max(m, n.position.x), -200);
      position = { x: right + 280, y: 160 };
    }
    // Keep nodes from landing on one another.
    while (nodes.some((n) => Math.abs(n.position.x - position!.x) < 60 && Math.abs(n.position.y - position!.y) < 60))
      position = { x: position.x, y: position.y + 130 };
    const parameters = initialParameters(type);
    const def: NodeDef = { id, type: type.type, ...(parameters ? { parameters } : {}) };
    setNodes((ns) => [...ns.map((n) => ({ ...n, selected: false })), { id, type: "nd", position, data: { def }, selected: true }]);
    // Added after the selected node: connected to it, the usual next step.
    if (!at && from && type.category !== "trigger") {
      const port = freeOutputPort(outputPorts(from.data.def, types[from.data.def.type]), from.id, edges);
      if (port) setEdges((es) => addEdge(toEdge({ from: from.id, to: id, output: port }), es));
    }
    setSelected(id);
    setSideTab("settings");
    markDirty();
    // Keep the new node in view.
    setTimeout(() => fitCanvas(200), 30);
  }

  function onDrop(e: DragEvent) {
    const type = types[e.dataTransfer.getData(PALETTE_MIME)];
    if (!type) return;
    e.preventDefault();
    addNode(type, flow.screenToFlowPosition({ x: e.clientX - 100, y: e.clientY - 30 }));
  }

  /** The selected nodes (of the draft, or of the past run shown) and the connections between
   * them, as workflow JSON: it pastes here, in another tab, or into a file to import. */
  function copyNodes(data: DataTransfer, e: Event) {
    const source = readOnly && snapshot ? snapshot : { nodes, edges };
    const ids = [...selectedGroup(source.nodes, selected)];
    if (!ids.length) return;
    const fragment = copyFragment(toDefinition(name, source.nodes, source.edges), ids);
    data.setData("text/plain", JSON.stringify(fragment, null, 2));
    e.preventDefault();
    setToast({ kind: "info", text: `Copied ${ids.length} node${ids.length === 1 ? "" : "s"}.` });
  }

  /** Workflow JSON pasted (copied nodes, a definition or an export) is added to the draft,
   * selected; other text is left alone. */
  function pasteNodes(data: DataTransfer, e: Event) {
    if (readOnly) return;
    const parsed = parseFragment(data.getData("text/plain"));
    if (!parsed) return;
    e.preventDefault();
    if ("error" in parsed) {
      setToast({ kind: "error", text: `Not pasted: ${parsed.error}` });
      return;
    }
    const pasted = toCanvas({ name, ...pasteFragment(toDefinition(name, nodes, edges).nodes, parsed.fragment) });
    if (!pasted.nodes.length) return;
    setNodes((ns) => [...ns.map((n) => ({ ...n, selected: false })), ...pasted.nodes.map((n) => ({ ...n, selected: true }))]);
    setEdges((es) => [...es, ...pasted.edges.filter((p) => !es.some((x) => x.id === p.id))]);
    setSelected(pasted.nodes[0].id);
    setSideTab("settings");
    markDirty();
    const count = pasted.nodes.length;
    setToast({ kind: "info", text: `Pasted ${count} node${count === 1 ? "" : "s"}.` });
  }

  function updateDef(id: string, def: NodeDef) {
    setNodes((ns) => ns.map((n) => (n.id === id ? { ...n, data: { def } } : n)));
    markDirty(`def:${id}`);
  }

  function renameNode(oldId: string, newId: string) {
    setNodes((ns) => ns.map((n) => (n.id === oldId ? { ...n, id: newId, data: { def: { ...n.data.def, id: newId } } } : n)));
    setEdges((es) =>
      es.map((e) => {
        if (e.source !== oldId && e.target !== oldId) return e;
        const source = e.source === oldId ? newId : e.source;
        const target = e.target === oldId ? newId : e.target;
        return toEdge({ from: source, to: target, output: e.sourceHandle ?? "main", input: e.targetHandle ?? "main" });
      }),
    );
    setSelected(newId);
    markDirty();
  }

  function deleteNode(id: string) {
    setNodes((ns) => ns.filter((n) => n.id !== id));
    setEdges((es) => es.filter((e) => e.source !== id && e.target !== id));
    setSelected((s) => (s === id ? null : s));
    markDirty();
  }

  /** The URL of a webhook trigger of the saved version (a node only in the draft has none). */
  function savedWebhookUrl(nodeId: string): string | null {
    if (!workflow?.nodes.some((n) => n.id === nodeId && n.type === "webhook_trigger")) return null;
    return `${window.location.origin}/webhooks/${encodeURIComponent(workflow.id)}/${encodeURIComponent(nodeId)}`;
  }

  /** ``overwrite``: the newer version a conflict named, to replace it knowingly. */
  async function save(overwrite?: number): Promise<boolean> {
    if (readOnly || !workflow) return false;
    const def = toDefinition(name.trim() || workflow.name, nodes, edges, workflow.settings);
    setSaving(true);
    try {
      const saved = await api.saveWorkflow(workflow.id, def, overwrite ?? workflow.version);
      setWorkflow(saved);
      setDirty(false);
      setConflict(null);
      const problems = saved.problems ?? [];
      if (problems.length) {
        showProblems(def, problems);
        setToast({ kind: "ok", text: `Saved as version ${saved.version}, with ${problemCount(problems.length)}: it cannot run until they are fixed.` });
      } else {
        setIssues(emptyIssues());
        setToast({ kind: "ok", text: `Saved as version ${saved.version}.` });
      }
      return true;
    } catch (e) {
      const err = e as ApiError;
      if (err.status === 409 && err.currentVersion !== null) {
        setConflict(err.currentVersion);
        setToast({ kind: "error", text: `Not saved: version ${err.currentVersion} was saved meanwhile.` });
      } else if (err.status === 422 && err.issues.length) {
        showProblems(def, err.issues);
        setToast({ kind: "error", text: `Not saved: ${problemCount(err.issues.length)}; see the marked nodes and fields.` });
      } else setToast({ kind: "error", text: `Not saved: ${err.message}` });
      return false;
    } finally {
      setSaving(false);
    }
  }

  /** Marks the problems on their nodes, fields and connections, and opens the first node's. */
  function showProblems(def: WorkflowDef, problems: ValidationIssue[]) {
    const mapped = mapIssues(def, problems);
    setIssues(mapped);
    const first = Object.keys(mapped.nodes)[0];
    if (first) {
      setSelected(first);
      setSideTab("settings");
    }
  }

  /** A run of the saved workflow refused for its problems (422 under ``workflow_id``): they
   * are marked as a save's are. False for any other error. */
  function refusedForProblems(err: ApiError): boolean {
    const problems = runProblems(err);
    if (!problems.length || !workflow) return false;
    showProblems(toDefinition(workflow.name, nodes, edges, workflow.settings), problems);
    setToast({ kind: "error", text: `Cannot run: ${problemCount(problems.length)}; see the marked nodes and fields.` });
    return true;
  }

  /** Runs from a trigger (with typed items, else the API's default); rejects with the API's
   * error, so that the input dialog can show a 422 at its field. */
  async function startTrigger(nodeId: string, input?: Item[]) {
    if (readOnly || busy || !workflow) return;
    if (dirty && !(await save())) return;
    const { id } = await api.runTrigger(workflow.id, nodeId, input);
    setEarlier(null);
    follow(id, []);
    keepFocus(nodeId);
    setHistoryVersion((v) => v + 1);
    setToast({ kind: "info", text: `Running from ${nodeId}…` });
  }

  async function runTrigger(nodeId: string) {
    try {
      await startTrigger(nodeId);
    } catch (e) {
      if (!refusedForProblems(e as ApiError)) setToast({ kind: "error", text: `Could not run: ${(e as Error).message}` });
    }
  }

  /** ``show``: the side tab to show meanwhile; a code node's test stays on its settings, where
   * its error marks the line. */
  async function runNode(nodeId: string, input?: PortItems, show: "results" | "settings" = "results") {
    if (readOnly || busy || !workflow) return;
    if (dirty && !(await save())) return;
    try {
      const { id } = await api.runNode(workflow.id, nodeId, input);
      setEarlier(keptBeforeNodeRun(canvasRun, nodeId));
      follow(id, []);
      keepFocus(nodeId);
      setHistoryVersion((v) => v + 1);
      setSelected(nodeId);
      setSideTab(show);
      setToast({ kind: "info", text: `Running node ${nodeId} alone…` });
    } catch (e) {
      const err = e as ApiError;
      // No input given and a parent has no recorded output: offer to run the parents.
      if (input === undefined && err.status === 422 && err.issues.some((i) => i.loc?.join(".") === "body.input")) {
        const def = toDefinition(workflow.name, nodes, edges, workflow.settings);
        setParentsFor({ node: nodeId, reason: err.issues.map((i) => i.msg).join("; "), triggers: triggersUpstream(nodeId, def, types) });
        return;
      }
      if (!refusedForProblems(err)) setToast({ kind: "error", text: `Could not run node ${nodeId}: ${err.message}` });
    }
  }

  async function retryShown() {
    if (!shown) return;
    try {
      await startRetry(api, { id: shown.id, workflow_id: workflowId });
    } catch (e) {
      setToast({ kind: "error", text: `Cannot retry: ${(e as Error).message}` });
    }
  }

  function pinOutput(nodeId: string, pinned: PortItems | null) {
    const node = nodes.find((n) => n.id === nodeId);
    if (!node) return;
    const { pinned_output: _dropped, ...rest } = node.data.def;
    updateDef(nodeId, pinned ? { ...rest, pinned_output: pinned } : rest);
    setToast({ kind: "info", text: pinned ? `Output of ${nodeId} pinned in the draft; save to keep it.` : `Output of ${nodeId} unpinned in the draft; save to keep it.` });
  }

  async function reloadLatest() {
    try {
      showWorkflow(await api.getWorkflow(workflowId));
      setToast({ kind: "info", text: "Reloaded the latest version; your changes were discarded." });
    } catch (e) {
      setToast({ kind: "error", text: `Cannot reload: ${(e as Error).message}` });
    }
  }

  async function cancel() {
    if (!shown) return;
    setCancelling(true);
    try {
      await api.cancel(shown.id);
    } catch (e) {
      if ((e as ApiError).status !== 409) setToast({ kind: "error", text: `Cancel failed: ${(e as Error).message}` });
    }
  }

  function openExecution(id: string) {
    if (dirty && !readOnly && !window.confirm("Leave the editor with unsaved changes? They stay in this tab until you leave the page.")) return;
    navigate({ page: "workflow", workflowId, executionId: id });
  }

  // ------------------------------------------------------------------ rendering

  saveRef.current = () => void save();
  travelRef.current = travel;
  clipboardRef.current = { copy: copyNodes, paste: pasteNodes };

  const context: EditorContextValue = {
    types,
    run: canvasRun,
    issues: readOnly ? emptyIssues() : shownIssues,
    readOnly,
    busy,
    runTrigger: (id) => void runTrigger(id),
    openMenu: (nodeId, x, y) => {
      setSelected(nodeId);
      setMenu({ nodeId, x, y });
    },
  };

  if (loadError)
    return (
      <div className="page">
        <TopBar onSignOut={onSignOut} />
        <main className="centered">
          <p role="alert">{loadError}</p>
          <button type="button" onClick={() => navigate({ page: "list" })}>
            Back to workflows
          </button>
        </main>
      </div>
    );

  // The node the side panel shows is the one selected on the canvas too.
  const shownNodes = readOnly && snapshot ? snapshot.nodes : nodes;
  const group = selectedGroup(shownNodes, selected);
  const canvasNodes = shownNodes.map((n) => (!!n.selected === group.has(n.id) ? n : { ...n, selected: group.has(n.id) }));
  const canvasEdges = (readOnly && snapshot ? snapshot.edges : edges).map((e): Edge => {
    const arrow = { ...e, markerEnd: { type: MarkerType.ArrowClosed, width: 18, height: 18 } };
    if (!readOnly && shownIssues.edges[e.id])
      return { ...arrow, className: "edge-invalid", label: `⚠ ${shownIssues.edges[e.id][0]}`, ariaLabel: shownIssues.edges[e.id].join("; ") };
    // After a run: how many items went along it, and a colour for whether any did.
    const count = itemsOnPort(canvasRun?.nodes[e.source]?.output, e.sourceHandle ?? "main");
    if (count === null) return arrow;
    const label = `${count} item${count === 1 ? "" : "s"}`;
    return { ...arrow, label, ariaLabel: `${e.source} to ${e.target}: ${label}`, className: count ? "edge-ran" : "edge-empty" };
  });
  const selectedNode = canvasNodes.find((n) => n.id === selected);
  const planNodes = displayedRun?.plan ?? [];
  const panelData = selectedNode ? nodePanelData(selectedNode.id, canvasNodes.map((n) => n.id), canvasEdges, displayedRun) : null;
  const nodeSettings = selectedNode && (
    <NodeSettings
      key={selectedNode.id}
      def={selectedNode.data.def}
      type={types[selectedNode.data.def.type]}
      problems={readOnly ? [] : shownIssues.nodes[selectedNode.id] ?? []}
      takenIds={canvasNodes.map((n) => n.id).filter((i) => i !== selectedNode.id)}
      readOnly={readOnly}
      onChange={(def) => updateDef(selectedNode.id, def)}
      onRename={(newId) => renameNode(selectedNode.id, newId)}
      onDelete={() => deleteNode(selectedNode.id)}
      webhookUrl={savedWebhookUrl(selectedNode.id)}
      tools={{
        api,
        // No input: the API builds it from what the parents recorded last.
        testRun: () => void runNode(selectedNode.id, undefined, "settings"),
        canTestRun: !readOnly && !busy && !saving,
        runError: canvasRun?.nodes[selectedNode.id]?.error ?? null,
        runId: displayedRun?.executionId ?? null,
        expressions: panelData ? { api, data: panelData.expression, execution: panelData.execution } : undefined,
      }}
    />
  );

  return (
    <EditorContext.Provider value={context}>
      <div className="page editor">
        <TopBar onSignOut={onSignOut}>
          <input
            className="wf-name"
            aria-label="Workflow name"
            value={name}
            disabled={readOnly}
            onChange={(e) => {
              setName(e.target.value);
              // The name is no canvas edit: typing it is not an undo step.
              setDirty(true);
            }}
          />
          {workflow && <span className="muted">v{workflow.version}</span>}
          {!readOnly && (
            <button type="button" className="primary" onClick={() => void save()} disabled={saving || !workflow} title="Ctrl+S">
              {saving ? "Saving…" : dirty ? "Save •" : "Saved"}
            </button>
          )}
          {!readOnly && (
            <>
              <button type="button" onClick={() => travel("undo")} disabled={!canUndo(history)} title="Ctrl+Z">
                Undo
              </button>
              <button type="button" onClick={() => travel("redo")} disabled={!canRedo(history)} title="Ctrl+Shift+Z or Ctrl+Y">
                Redo
              </button>
            </>
          )}
          {dirty && !readOnly && <span className="unsaved">unsaved changes</span>}
        </TopBar>

        {readOnly && (
          <div className="banner" role="note">
            Viewing a past execution as it ran (read-only).{" "}
            <button type="button" onClick={() => navigate({ page: "workflow", workflowId, executionId: null })}>
              ← Back to editing
            </button>
            {shown && RETRYABLE.has(shown.run.status) && (
              <>
                {" "}
                <button type="button" onClick={() => void retryShown()}>
                  ↻ Retry
                </button>
              </>
            )}
            {shown && isFinished(shown.run) && (
              <>
                {" "}
                <button type="button" onClick={() => setRerunFrom({})}>
                  Rerun from a node…
                </button>
              </>
            )}
          </div>
        )}
        {!readOnly && conflict !== null && (
          <div className="banner error" role="alert" aria-label="Save conflict">
            <span>
              Not saved: version {conflict} of this workflow was saved meanwhile (in another tab, or by someone
              else), after the version {workflow?.version} you started from.
            </span>{" "}
            <button type="button" onClick={() => void reloadLatest()}>
              Reload version {conflict} (discard my changes)
            </button>{" "}
            <button type="button" className="danger" onClick={() => void save(conflict)}>
              Overwrite with my changes
            </button>
          </div>
        )}
        {cycle && (
          <div className="banner error" role="alert" aria-label="Cycle">
            <span>
              <span aria-hidden="true">↻ </span>
              <strong>Cycle:</strong> {cycleText(cycle)}. A workflow cannot run in a loop: remove one of the marked
              connections.
            </span>
          </div>
        )}
        {!readOnly && issues.general.length > 0 && (
          <div className="banner error" role="alert">
            <strong>Problems:</strong>
            <ul>
              {issues.general.map((g, i) => (
                <li key={i}>{g}</li>
              ))}
            </ul>
          </div>
        )}
        {displayedRun && (
          <RunBar
            run={displayedRun}
            connection={connection}
            stepping={step !== null}
            asOf={step !== null && shown ? shown.events[step]?.time ?? null : null}
            onCancel={() => void cancel()} cancelling={cancelling} canCancel={busy} />
        )}

        <main className="workspace">
          <h1 className="sr-only">
            {readOnly ? `Execution of ${name || "the workflow"}` : `Workflow ${name || ""}`}
          </h1>
          {!readOnly && <Palette nodeTypes={nodeTypes} onAdd={(t) => addNode(t)} hasSelection={!!selectedNode} />}
          <div className="canvas" ref={canvasRef} tabIndex={-1} onDrop={onDrop} onDragOver={(e) => e.preventDefault()} aria-label="Workflow canvas">
            <ReactFlow
              nodes={canvasNodes}
              edges={canvasEdges}
              nodeTypes={NODE_TYPES}
              onNodesChange={onNodesChange}
              onEdgesChange={onEdgesChange}
              onConnect={onConnect}
              onNodeClick={(_, n) => {
                setSelected(n.id);
                setSideTab(canvasRun?.nodes[n.id] ? "results" : "settings");
              }}
              onNodeContextMenu={(e, n) => {
                e.preventDefault();
                setSelected(n.id);
                setMenu({ nodeId: n.id, x: e.clientX, y: e.clientY });
              }}
              onPaneClick={() => {
                setSelected(null);
                setMenu(null);
                canvasRef.current?.focus({ preventScroll: true });
              }}
              nodesDraggable={!readOnly}
              nodesConnectable={!readOnly}
              deleteKeyCode={readOnly ? null : ["Delete", "Backspace"]}
              fitView
              fitViewOptions={{ maxZoom: 1.1, padding: FIT_PADDING }}
              proOptions={{ hideAttribution: true }}
            >
              <Background gap={20} />
              <Controls />
              <MiniMap pannable zoomable ariaLabel="Minimap" style={{ width: MINIMAP_WIDTH, height: MINIMAP_HEIGHT }} nodeColor={(n) => minimapColor(canvasRun?.nodes[n.id]?.status)} />
            </ReactFlow>
          </div>

          <aside className="side-panel" aria-label="Node details">
            {selectedNode ? (
              <>
                <div className="side-head">
                  <h2>{selectedNode.data.def.name || selectedNode.id}</h2>
                  <span className="muted">{types[selectedNode.data.def.type]?.display_name ?? selectedNode.data.def.type}</span>
                  <button type="button" className="ghost node-view-open" onClick={() => setNodeViewOpen(true)}>
                    ⤢ Open node view
                  </button>
                </div>
                <div className="tabs" role="tablist" aria-label="Node panel">
                  <button type="button" role="tab" aria-selected={sideTab === "settings"} onClick={() => setSideTab("settings")}>
                    Settings{!readOnly && shownIssues.nodes[selectedNode.id]?.length ? " ⚠" : ""}
                  </button>
                  <button type="button" role="tab" aria-selected={sideTab === "results"} onClick={() => setSideTab("results")}>
                    Results{canvasRun?.nodes[selectedNode.id] ? ` (${canvasRun.nodes[selectedNode.id].status})` : ""}
                  </button>
                </div>
                <div role="tabpanel" className="side-body">
                  {sideTab === "settings" ? (
                    nodeViewOpen ? (
                      <p className="muted">The settings are open in the node view.</p>
                    ) : (
                      nodeSettings
                    )
                  ) : (
                    <NodeResults
                      key={`${selectedNode.id}-${shown?.id}`}
                      node={selectedNode.id}
                      state={canvasRun?.nodes[selectedNode.id]}
                      events={shown ? (step === null ? shown.events : shown.events.slice(0, step + 1)) : []}
                      onPin={readOnly ? undefined : (output) => pinOutput(selectedNode.id, output)}
                    />
                  )}
                  {sideTab === "settings" && selectedNode.data.def.pinned_output && (
                    <PinnedOutputEditor
                      pinned={selectedNode.data.def.pinned_output}
                      readOnly={readOnly}
                      onChange={(pinned) => pinOutput(selectedNode.id, pinned)}
                    />
                  )}
                </div>
              </>
            ) : (
              <div className="side-body help-text">
                <h2>How to</h2>
                <ol>
                  <li>Add nodes from the palette on the left (click adds after the selected node; or drag onto the canvas).</li>
                  <li>Connect an output port (right dot) to an input port (left dot).</li>
                  <li>Select a node to edit its parameters here.</li>
                  <li>Save, then press <strong>▶ Run workflow</strong> on a trigger.</li>
                  <li>Right-click a node (or its ⋯ button) to run it alone.</li>
                </ol>
                <p className="muted">Delete or Backspace removes the selected node or connection. Ctrl+S saves; Ctrl+Z undoes and Ctrl+Shift+Z (or Ctrl+Y) redoes an edit of the canvas. Ctrl+C copies the selected nodes (Ctrl+click or a Shift+drag box selects more) and Ctrl+V pastes them, or workflow JSON.</p>
              </div>
            )}
          </aside>
        </main>

        <section className="bottom-panel" aria-label="Execution details">
          <div className="tabs" role="tablist" aria-label="Execution panel">
            <button type="button" role="tab" aria-selected={bottomTab === "logs"} onClick={() => setBottomTab("logs")}>
              Log
            </button>
            <button type="button" role="tab" aria-selected={bottomTab === "history"} onClick={() => setBottomTab("history")}>
              Executions
            </button>
            <button type="button" role="tab" aria-selected={bottomTab === "timeline"} onClick={() => setBottomTab("timeline")}>
              Timeline{shown ? ` (${shown.events.length} events)` : ""}
            </button>
          </div>
          <div role="tabpanel" className="bottom-body">
            {bottomTab === "logs" && (
              <LogPanel api={api} executionId={shown?.id ?? null} version={shown?.run.lastSeq ?? 0} nodes={planNodes} />
            )}
            {bottomTab === "history" && (
              <HistoryPanel api={api} workflowId={workflowId} refresh={historyVersion} current={executionId} onOpen={openExecution} />
            )}
            {bottomTab === "timeline" &&
              (shown ? (
                <TimelinePanel events={shown.events} step={step} onStep={setStep} />
              ) : (
                <p className="muted pad">Run the workflow, or open one of its executions, to step through its events.</p>
              ))}
          </div>
        </section>

        {menu && (
          <ContextMenu
            x={menu.x}
            y={menu.y}
            label={`Node ${menu.nodeId}`}
            onClose={() => {
              setMenu(null);
              keepFocus(menu.nodeId);
            }}
            items={[
              { label: "Execute node", onSelect: () => void runNode(menu.nodeId), disabled: readOnly || busy },
              { label: "Execute node with input…", onSelect: () => setInputFor(menu.nodeId), disabled: readOnly || busy },
              ...(readOnly
                ? [{ label: "Rerun from this node…", onSelect: () => setRerunFrom({ node: menu.nodeId }), disabled: busy }]
                : []),
              {
                label: "Show results",
                onSelect: () => {
                  setSelected(menu.nodeId);
                  setSideTab("results");
                },
              },
              {
                label: "Edit settings",
                onSelect: () => {
                  setSelected(menu.nodeId);
                  setSideTab("settings");
                },
              },
              ...(types[nodes.find((n) => n.id === menu.nodeId)?.data.def.type ?? ""]?.category === "trigger" && !readOnly
                ? [{ label: "Run workflow with input…", onSelect: () => setTriggerInputFor(menu.nodeId), disabled: busy }]
                : []),
              {
                label: "Open node view",
                onSelect: () => {
                  setSelected(menu.nodeId);
                  setNodeViewOpen(true);
                },
              },
              { label: "Delete node", onSelect: () => deleteNode(menu.nodeId), disabled: readOnly, danger: true },
            ]}
          />
        )}
        {inputFor && (
          <InputDialog
            nodeId={inputFor}
            initial={canvasRun?.nodes[inputFor]?.input ?? { main: [{}] }}
            onCancel={() => setInputFor(null)}
            onRun={(input) => {
              setInputFor(null);
              void runNode(inputFor, input);
            }}
          />
        )}
        {triggerInputFor && workflow && (
          <TriggerInputDialog
            workflowId={workflow.id}
            trigger={triggerInputFor}
            onCancel={() => {
              setTriggerInputFor(null);
              keepFocus(triggerInputFor);
            }}
            onRun={async (items) => {
              await startTrigger(triggerInputFor, items);
              setTriggerInputFor(null);
            }}
          />
        )}
        {nodeViewOpen && selectedNode && panelData && (
          <NodeView
            nodeId={selectedNode.id}
            title={selectedNode.data.def.name || selectedNode.id}
            typeName={types[selectedNode.data.def.type]?.display_name ?? selectedNode.data.def.type}
            input={panelData.input}
            inputRecorded={panelData.inputRecorded}
            parents={panelData.parents}
            output={panelData.output}
            status={displayedRun?.nodes[selectedNode.id] ? <NodeStatusBadge node={displayedRun.nodes[selectedNode.id]} /> : null}
            settings={nodeSettings}
            onClose={() => {
              setNodeViewOpen(false);
              keepFocus(selectedNode.id);
            }}
          />
        )}
        {rerunFrom && shown && (
          <RerunDialog
            api={api}
            executionId={shown.id}
            workflowId={workflowId}
            initialNode={rerunFrom.node}
            onClose={() => setRerunFrom(null)}
          />
        )}
        {parentsFor && (
          <ParentsFirstDialog
            node={parentsFor.node}
            reason={parentsFor.reason}
            triggers={parentsFor.triggers}
            onCancel={() => {
              setParentsFor(null);
              keepFocus(parentsFor.node);
            }}
            onRun={(trigger) => {
              setParentsFor(null);
              setSelected(parentsFor.node);
              setSideTab("results");
              void runTrigger(trigger);
            }}
            onInput={() => {
              setParentsFor(null);
              setInputFor(parentsFor.node);
            }}
          />
        )}
        {toast && (
          <div className={`toast ${toast.kind}`} role={toast.kind === "error" ? "alert" : "status"}>
            <span>{toast.text}</span>
            <button type="button" className="icon-button" aria-label="Dismiss" onClick={() => setToast(null)}>
              ×
            </button>
          </div>
        )}
      </div>
    </EditorContext.Provider>
  );
}

export type { WorkflowDef };
