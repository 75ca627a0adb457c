// The browser tests: headless Chromium (playwright-core, the system's /usr/bin/chromium) against
// a real `nodedrop up` started by e2e/system.ts on free ports and a temporary data directory.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    environment: "node",
    include: ["e2e/**/*.e2e.ts"],
    globalSetup: ["e2e/system.ts"],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    fileParallelism: false,
    sequence: { concurrent: false },
  },
});
