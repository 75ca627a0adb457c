/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run dev` proxies the API of a running `nodedrop up` (NODEDROP_URL, default :8000).
const api = process.env.NODEDROP_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      "/api": api,
      "/health": api,
      "/ws": { target: api.replace(/^http/, "ws"), ws: true },
    },
  },
  build: {
    outDir: "dist",
    sourcemap: false,
    chunkSizeWarningLimit: 1000,
    rollupOptions: {
      output: {
        // CodeMirror's core, shared by the Python and the expression editors (both loaded
        // lazily), under a name that says what it is.
        manualChunks: (id) => (/node_modules\/@(codemirror|lezer)\/(state|view|commands|autocomplete|language|common|highlight)\//.test(id) ? "codemirror" : undefined),
      },
    },
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
    setupFiles: ["src/test-setup.ts"],
  },
});
