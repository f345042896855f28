// Solves the doors' proof of work as a buyer's phone does: the page's own Web Worker
// (/proof-worker.js) on a challenge the server issued, with the CPU slowed down 4× as in
// phone.mjs, and prints one JSON line per solve: seconds, and the tries it took.
//
// usage: node perf/solve.mjs URL [SOLVES]     (run by `make bench`; Debian's Chromium)
import { chromium } from "@playwright/test";

const url = process.argv[2];
const solves = Number(process.argv[3] ?? 5);
if (!url) {
  console.error("usage: node perf/solve.mjs URL [SOLVES]");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
try {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 },
    isMobile: true,
    hasTouch: true,
  });
  const page = await context.newPage();
  await page.goto(url);
  const cdp = await context.newCDPSession(page);
  await cdp.send("Emulation.setCPUThrottlingRate", { rate: 4 });
  for (let i = 0; i < solves; i++) {
    const result = await page.evaluate(async (n) => {
      // A buyer of their own each time: a challenge is issued to a signed-in buyer.
      await fetch("/api/v1/session", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: `phone ${n}` }),
      });
      const drops = await (await fetch("/api/v1/drops")).json();
      const drop = drops.drops[0].id;
      const issued = await (await fetch(`/api/v1/drops/${drop}/challenge`)).json();
      if (!issued.challenge) throw new Error("the server asks no proof");
      const started = performance.now();
      const answer = await new Promise((resolve, reject) => {
        const worker = new Worker("/proof-worker.js");
        worker.onmessage = (event) => {
          worker.terminate();
          resolve(event.data);
        };
        worker.onerror = (event) => reject(new Error(event.message));
        worker.postMessage(JSON.stringify(issued.challenge));
      });
      if (!answer.proof) throw new Error(answer.error);
      const seconds = (performance.now() - started) / 1000;
      const counter = JSON.parse(atob(answer.proof)).solution.counter;
      return { seconds, counter };
    }, i);
    console.log(JSON.stringify(result));
  }
  await context.close();
} finally {
  await browser.close();
}
