// Starts the whole system the way a user does (`nodedrop up`), on a temporary data directory and
// free ports (never the defaults 8000/8001/4250/5440), serving the built UI; stops it after.
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";

const repo = resolve(fileURLToPath(new URL("../..", import.meta.url)));

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? ok(address.port) : fail(new Error("no port"))));
    });
  });
}

async function waitFor(url: string, process: ChildProcess, log: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (process.exitCode !== null) throw new Error(`nodedrop up exited (${process.exitCode}):\n${readFileSync(log, "utf8").slice(-4000)}`);
    try {
      const response = await fetch(url);
      if (response.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`nodedrop up did not answer ${url} in time:\n${readFileSync(log, "utf8").slice(-4000)}`);
}

declare module "vitest" {
  export interface ProvidedContext {
    baseUrl: string;
    apiKey: string;
    /** The system's log (every service's output), or "" for a system started elsewhere. */
    logFile: string;
  }
}

export default async function setup(project: TestProject) {
  // Against a system already running (e.g. `make run` while working on the UI): NODEDROP_E2E_URL
  // and NODEDROP_E2E_KEY.
  if (process.env.NODEDROP_E2E_URL && process.env.NODEDROP_E2E_KEY) {
    project.provide("baseUrl", process.env.NODEDROP_E2E_URL.replace(/\/$/, ""));
    project.provide("apiKey", process.env.NODEDROP_E2E_KEY);
    project.provide("logFile", "");
    return;
  }
  const dataDir = mkdtempSync(join(tmpdir(), "nodedrop-web-e2e-"));
  chmodSync(dataDir, 0o711); // PostgreSQL runs as its own system user when this runs as root
  const [port, notifier, nats, pg] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const apiKey = `e2e-${Math.random().toString(36).slice(2)}`;
  const python = process.env.NODEDROP_PYTHON ?? join(repo, ".venv", "bin", "python");
  const log = join(dataDir, "up.log");
  const out = openSync(log, "a");
  const child = spawn(python, ["-m", "nodedrop.cli", "up"], {
    cwd: repo,
    env: {
      ...process.env,
      NODEDROP_DATA_DIR: dataDir,
      NODEDROP_HOST: "127.0.0.1",
      NODEDROP_PORT: String(port),
      NODEDROP_NOTIFIER_PORT: String(notifier),
      NODEDROP_NATS_PORT: String(nats),
      NODEDROP_PG_PORT: String(pg),
      NODEDROP_ADMIN_TOKEN: apiKey,
      NODEDROP_WEB_DIR: join(repo, "web", "dist"),
      // The retry test calls a closed port on 127.0.0.1.
      NODEDROP_HTTP_ALLOW_PRIVATE: "true",
      NODEDROP_NATS_URL: "",
      NODEDROP_DATABASE_URL: "",
      NO_COLOR: "1",
    },
    stdio: ["ignore", out, out],
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await waitFor(`${baseUrl}/health`, child, log, 170_000);
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  project.provide("baseUrl", baseUrl);
  project.provide("apiKey", apiKey);
  project.provide("logFile", log);

  return async () => {
    // `nodedrop up` stops its services and servers on SIGTERM.
    const exited = new Promise<void>((r) => (child.exitCode !== null ? r() : child.once("exit", () => r())));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    await exited;
    clearTimeout(timer);
    if (!process.env.NODEDROP_KEEP_E2E_DATA) rmSync(dataDir, { recursive: true, force: true });
  };
}
