// Loads the dashboard as a phone on a slow mobile network would, with a cold cache each time,
// and prints one JSON line per load: milliseconds from navigation to first contentful paint
// and to a working page (every island awake: <body data-hydrated="true">).
//
// usage: node perf/phone.mjs URL [LOADS]     (run by `make bench`; Debian's Chromium)
// Throttling: 1.6 Mbit/s down, 750 kbit/s up, 150 ms latency per request (Chrome DevTools
// Protocol), and the CPU slowed down 4×.
import { chromium } from "@playwright/test";

const url = process.argv[2];
const loads = Number(process.argv[3] ?? 5);
if (!url) {
  console.error("usage: node perf/phone.mjs URL [LOADS]");
  process.exit(2);
}

const browser = await chromium.launch({
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
});
try {
  for (let i = 0; i < loads; i++) {
    // A fresh context: nothing cached, as on a buyer's first visit.
    const context = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 3,
      isMobile: true,
      hasTouch: true,
    });
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send("Network.enable");
    await cdp.send("Network.emulateNetworkConditions", {
      offline: false,
      latency: 150,
      downloadThroughput: 1_600_000 / 8,
      uploadThroughput: 750_000 / 8,
    });
    await cdp.send("Emulation.setCPUThrottlingRate", { rate: 4 });
    await page.addInitScript(() => {
      new MutationObserver((_, observer) => {
        if (document.body?.getAttribute("data-hydrated") === "true") {
          window.__hydratedAt = performance.now();
          observer.disconnect();
        }
      }).observe(document, {
        subtree: true,
        attributes: true,
        attributeFilter: ["data-hydrated"],
      });
    });
    await page.goto(url, { waitUntil: "commit" });
    await page.waitForFunction(() => window.__hydratedAt !== undefined, null, {
      timeout: 60_000,
    });
    const timings = await page.evaluate(() => ({
      hydrated_ms: window.__hydratedAt,
      fcp_ms: performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? null,
    }));
    console.log(JSON.stringify(timings));
    await context.close();
  }
} finally {
  await browser.close();
}
