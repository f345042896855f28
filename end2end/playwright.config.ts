import { defineConfig } from "@playwright/test";

// Three release servers, each on a fresh SQLite database seeded with the demo drops: the main
// one with the defaults (60 s holds, a proof of work at every queue's and draw's door), one
// whose holds last 3 s for the expiry test, and one that asks no proof of work, for the
// browser without JavaScript (which cannot solve one).
const port = Number(process.env.E2E_PORT ?? 3100);
const baseURL = `http://127.0.0.1:${port}`;

function server(port: number, db: string, env: Record<string, string> = {}) {
  return {
    command: `rm -f target/${db}* && exec target/release/dropline`,
    cwd: "..",
    url: `http://127.0.0.1:${port}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: "pipe" as const,
    stderr: "pipe" as const,
    env: {
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      LEPTOS_SITE_ROOT: "target/site",
      DATABASE_URL: `sqlite://target/${db}?mode=rwc`,
      ADMIN_TOKEN: "e2e-admin-token-e2e-admin-token-e2e",
      RUST_LOG: "warn",
      // Most specs sign buyers in by display name; accounts.spec.ts uses the real forms.
      DEMO_SIGN_IN: "true",
      // Passkeys are bound to a host name (browsers refuse them at an IP address).
      PUBLIC_ORIGIN: `http://localhost:${port}`,
      ...env,
    },
  };
}

export default defineConfig({
  testDir: "./tests",
  outputDir: "./test-results",
  timeout: 45_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [["list"], ["html", { outputFolder: "playwright-report", open: "never" }]],
  use: {
    baseURL,
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
  projects: [
    { name: "chromium", testIgnore: /nojs\.spec\.ts/ },
    {
      name: "no-javascript",
      testMatch: /nojs\.spec\.ts/,
      use: { javaScriptEnabled: false, baseURL: `http://127.0.0.1:${port + 2}` },
    },
  ],
  webServer: [
    server(port, "e2e.db"),
    server(port + 1, "e2e-short.db", { RESERVATION_TTL_SECONDS: "3" }),
    server(port + 2, "e2e-nojs.db", { PROOF_FLOOR: "0" }),
  ],
});
