import type { ReactNode } from "react";
import { navigate } from "../router";

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
      <div className="topbar-main">{children}</div>
      <button type="button" className="ghost" onClick={onSignOut}>
        Sign out
      </button>
    </header>
  );
}
