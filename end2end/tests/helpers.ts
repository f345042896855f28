import { APIRequestContext, Browser, BrowserContext, expect, Page } from "@playwright/test";

export const ADMIN_TOKEN = "e2e-admin-token-e2e-admin-token-e2e";

/** A drop of its own for one test, created through the admin API; answers its name. */
export async function createDrop(
  request: APIRequestContext,
  baseURL: string,
  stock: number,
  label: string,
): Promise<string> {
  const name = `${label} ${Date.now() % 100000}-${Math.floor(Math.random() * 1000)}`;
  const response = await request.post(`${baseURL}/api/v1/drops`, {
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
    data: { name, price_cents: 9900, total_stock: stock, description: "Made for a test." },
  });
  expect(response.status()).toBe(201);
  return name;
}

/** A drop sold by size, each size with its units (`{ "EU 42": 2, ... }`, in the card's
 * order), created through the admin API; answers its name. */
export async function createSizedDrop(
  request: APIRequestContext,
  baseURL: string,
  sizes: Record<string, number>,
  label: string,
): Promise<string> {
  const name = `${label} ${Date.now() % 100000}-${Math.floor(Math.random() * 1000)}`;
  const response = await request.post(`${baseURL}/api/v1/drops`, {
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
    data: {
      name,
      price_cents: 9900,
      sizes: Object.entries(sizes).map(([label, stock]) => ({ label, stock })),
    },
  });
  expect(response.status()).toBe(201);
  return name;
}

/** One size's choice on a card: its radio button, named "EU 42 3 left" and the like. */
export function size(page: Page, drop: string, label: string) {
  return card(page, drop).getByRole("radio", { name: new RegExp(`^${label} `) });
}

/** A drop sold through a queue whose lobby is open now (or by draw, whose entries are) and
 * that goes live (is drawn) in `goLiveMs`; answers its name and id. */
export async function createQueueDrop(
  request: APIRequestContext,
  baseURL: string,
  stock: number,
  label: string,
  goLiveMs: number,
  mode: "queue" | "draw" = "queue",
): Promise<{ name: string; id: number }> {
  const name = `${label} ${Date.now() % 100000}-${Math.floor(Math.random() * 1000)}`;
  const now = Date.now();
  const response = await request.post(`${baseURL}/api/v1/drops`, {
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
    data: {
      name,
      price_cents: 9900,
      total_stock: stock,
      sale_mode: mode,
      starts_at: new Date(now + goLiveMs).toISOString(),
      ...(mode === "queue" ? { queue_opens_at: new Date(now - 1000).toISOString() } : {}),
    },
  });
  expect(response.status()).toBe(201);
  return { name, id: (await response.json()).drop.id };
}

/** A buyer in a browser context of its own, signed in, on a live dashboard. */
export async function buyer(browser: Browser, baseURL: string, name: string) {
  const context: BrowserContext = await browser.newContext({ baseURL });
  const page: Page = await context.newPage();
  const errors: Error[] = [];
  page.on("pageerror", (error) => errors.push(error));
  await page.goto("/");
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  await page.getByLabel("Display name").fill(name);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("user-name")).toHaveText(name);
  await expect(page.locator(".connection")).toHaveAttribute("data-state", "live");
  return { context, page, errors };
}

/** The card of the drop with this name. */
export function card(page: Page, name: string) {
  return page.getByRole("article", { name });
}

/** The "N of M left" line of a card. */
export function stock(page: Page, name: string) {
  return card(page, name).getByTestId("stock");
}
