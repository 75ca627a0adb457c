// A tiny history-API router: the API answers index.html for every UI path, so deep links work.
import { useEffect, useState } from "react";

export type Route =
  | { page: "list" }
  | { page: "credentials" }
  | { page: "workflow"; workflowId: string; executionId: string | null };

export function parseRoute(path: string): Route {
  const m = path.match(/^\/workflows\/([^/]+)(?:\/executions\/([^/]+))?\/?$/);
  if (/^\/credentials\/?$/.test(path)) return { page: "credentials" };
  if (m) return { page: "workflow", workflowId: decodeURIComponent(m[1]), executionId: m[2] ? decodeURIComponent(m[2]) : null };
  return { page: "list" };
}

export function routePath(route: Route): string {
  if (route.page === "list") return "/";
  if (route.page === "credentials") return "/credentials";
  const base = `/workflows/${encodeURIComponent(route.workflowId)}`;
  return route.executionId ? `${base}/executions/${encodeURIComponent(route.executionId)}` : base;
}

const listeners = new Set<() => void>();

export function navigate(route: Route, replace = false): void {
  const path = routePath(route);
  if (path === location.pathname) return;
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  listeners.forEach((l) => l());
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.pathname));
  useEffect(() => {
    const update = () => setRoute(parseRoute(location.pathname));
    listeners.add(update);
    window.addEventListener("popstate", update);
    return () => {
      listeners.delete(update);
      window.removeEventListener("popstate", update);
    };
  }, []);
  return route;
}
