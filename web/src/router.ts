// A tiny history-API router: the API answers index.html for every UI path, so deep links work.
import { useEffect, useState } from "react";

export type Route =
  | { page: "list" }
  | { page: "credentials" }
  | { page: "executions" }
  // An execution by id alone (a child's parent, say): opened in its workflow once that is known.
  | { page: "execution"; executionId: string }
  | { page: "workflow"; workflowId: string; executionId: string | null };

export function parseRoute(path: string): Route {
  const m = path.match(/^\/workflows\/([^/]+)(?:\/executions\/([^/]+))?\/?$/);
  if (/^\/credentials\/?$/.test(path)) return { page: "credentials" };
  if (/^\/executions\/?$/.test(path)) return { page: "executions" };
  const execution = path.match(/^\/executions\/([^/]+)\/?$/);
  if (execution) return { page: "execution", executionId: decodeURIComponent(execution[1]) };
  if (m) return { page: "workflow", workflowId: decodeURIComponent(m[1]), executionId: m[2] ? decodeURIComponent(m[2]) : null };
  return { page: "list" };
}

export function routePath(route: Route): string {
  if (route.page === "list") return "/";
  if (route.page === "credentials") return "/credentials";
  if (route.page === "executions") return "/executions";
  if (route.page === "execution") return `/executions/${encodeURIComponent(route.executionId)}`;
  const base = `/workflows/${encodeURIComponent(route.workflowId)}`;
  return route.executionId ? `${base}/executions/${encodeURIComponent(route.executionId)}` : base;
}

const listeners = new Set<() => void>();

/** Asked before the app leaves a page: a question to confirm (unsaved changes), or null. The
 * target is where it goes (null: signing out). */
export type LeaveGuard = (target: Route | null) => string | null;
let leaveGuard: LeaveGuard | null = null;

/** Installs the guard; the function returned removes it. */
export function setLeaveGuard(guard: LeaveGuard): () => void {
  leaveGuard = guard;
  return () => {
    if (leaveGuard === guard) leaveGuard = null;
  };
}

/** Whether the app may go to ``target``: no guard objects, or the user confirms. */
export function mayLeave(target: Route | null): boolean {
  const question = leaveGuard?.(target) ?? null;
  return question === null || window.confirm(question);
}

/** The path the app shows, to go back to when a Back is refused. */
let shownPath = typeof location === "undefined" ? "/" : location.pathname;

export function navigate(route: Route, replace = false): void {
  const path = routePath(route);
  if (path === location.pathname) return;
  if (!mayLeave(route)) return;
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  shownPath = path;
  listeners.forEach((l) => l());
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.pathname));
  useEffect(() => {
    const update = () => setRoute(parseRoute(location.pathname));
    // Back and Forward have already changed the URL when they are heard: a refused one puts
    // the page's own path back.
    const onPopState = () => {
      if (location.pathname !== shownPath && !mayLeave(parseRoute(location.pathname))) {
        history.pushState(null, "", shownPath);
        return;
      }
      shownPath = location.pathname;
      update();
    };
    listeners.add(update);
    window.addEventListener("popstate", onPopState);
    return () => {
      listeners.delete(update);
      window.removeEventListener("popstate", onPopState);
    };
  }, []);
  return route;
}
