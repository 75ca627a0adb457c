import type { ReactNode } from "react";
import { mayLeave, navigate, parseRoute, routePath, type Route } from "../router";

/** A link that moves within the app without reloading it (and still opens in a new tab). */
function NavLink({ to, current, children }: { to: Route; current: boolean; children: ReactNode }) {
  const href = routePath(to);
  return (
    <a
      href={href}
      aria-current={current ? "page" : undefined}
      onClick={(e) => {
        if (e.ctrlKey || e.metaKey || e.shiftKey) return;
        e.preventDefault();
        navigate(to);
      }}
    >
      {children}
    </a>
  );
}

export function TopBar({ children, onSignOut }: { children?: ReactNode; onSignOut: () => void }) {
  const page = parseRoute(location.pathname).page;
  return (
    <header className="topbar">
      <a
        className="brand"
        href="/"
        onClick={(e) => {
          e.preventDefault();
          navigate({ page: "list" });
        }}
      >
        <span className="logo" aria-hidden="true">◆</span> nodedrop
      </a>
      {/* The editor's way back to the list too (it has no breadcrumb of its own). */}
      <nav className="app-nav" aria-label="Main">
        <NavLink to={{ page: "list" }} current={page === "list" || page === "workflow"}>
          Workflows
        </NavLink>
        <NavLink to={{ page: "executions" }} current={page === "executions"}>
          Executions
        </NavLink>
        <NavLink to={{ page: "credentials" }} current={page === "credentials"}>
          Credentials
        </NavLink>
      </nav>
      <div className="topbar-main">{children}</div>
      <button type="button" className="ghost" onClick={() => mayLeave(null) && onSignOut()}>
        Sign out
      </button>
    </header>
  );
}
