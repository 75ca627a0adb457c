import type { ReactNode } from "react";
import { navigate, type Route } from "../router";

/** A link that moves within the app without reloading it (and still opens in a new tab). */
function NavLink({ to, href, children }: { to: Route; href: string; children: ReactNode }) {
  const current = location.pathname === href;
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
      <nav className="app-nav" aria-label="Main">
        <NavLink to={{ page: "list" }} href="/">
          Workflows
        </NavLink>
        <NavLink to={{ page: "credentials" }} href="/credentials">
          Credentials
        </NavLink>
      </nav>
      <div className="topbar-main">{children}</div>
      <button type="button" className="ghost" onClick={onSignOut}>
        Sign out
      </button>
    </header>
  );
}
