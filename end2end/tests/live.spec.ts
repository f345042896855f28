import { expect, test } from "@playwright/test";
import { ADMIN_TOKEN, buyer, card, createDrop, stock } from "./helpers";

test.describe("two buyers, one drop", () => {
  test("a reserve in one browser moves the stock in the other without a reload", async ({
    browser,
    request,
    baseURL,
  }) => {
    const drop = await createDrop(request, baseURL!, 5, "Live Stock");
    const a = await buyer(browser, baseURL!, "Alice");
    const b = await buyer(browser, baseURL!, "Bruno");
    await expect(stock(b.page, drop)).toHaveText("5 of 5 left");
    await b.page.evaluate(() => ((window as unknown as { marker: number }).marker = 1));

    await card(a.page, drop).getByRole("button", { name: "Reserve" }).click();
    await expect(card(a.page, drop).getByTestId("countdown")).toBeVisible();
    await expect(stock(a.page, drop)).toHaveText("4 of 5 left");
    await expect(stock(b.page, drop)).toHaveText("4 of 5 left");
    expect(await b.page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(1);

    await card(a.page, drop).getByRole("button", { name: "Cancel" }).click();
    await expect(stock(b.page, drop)).toHaveText("5 of 5 left");
    await expect(card(a.page, drop).getByRole("button", { name: "Reserve" })).toBeEnabled();
    expect([...a.errors, ...b.errors]).toEqual([]);
  });

  test("both click Reserve on the last unit: one holds it, the other is told it sold out", async ({
    browser,
    request,
    baseURL,
  }) => {
    const drop = await createDrop(request, baseURL!, 1, "Last Pair");
    const a = await buyer(browser, baseURL!, "Ada");
    const b = await buyer(browser, baseURL!, "Ben");

    // Submit both Reserve forms at the same moment (a click could find the button already
    // disabled by the live feed, which is the point of the feed but not of this test).
    const submit = (page: typeof a.page) =>
      card(page, drop)
        .locator("form", { has: page.locator('input[name="drop_id"]') })
        .evaluate((form: HTMLFormElement) => form.requestSubmit());
    await Promise.all([submit(a.page), submit(b.page)]);
    const held = async (page: typeof a.page) =>
      card(page, drop)
        .getByTestId("countdown")
        .waitFor({ timeout: 5_000 })
        .then(() => true)
        .catch(() => false);
    const outcomes = await Promise.all([held(a.page), held(b.page)]);
    expect(outcomes.filter(Boolean)).toHaveLength(1);
    const loser = outcomes[0] ? b.page : a.page;
    await expect(loser.getByRole("status").filter({ hasText: "Sold out" })).toBeVisible();
    await expect(card(loser, drop).getByRole("button", { name: "Sold out" })).toBeDisabled();
    await expect(stock(loser, drop)).toHaveText("0 of 1 left");
  });

  test("a purchase shows up in every activity feed", async ({ browser, request, baseURL }) => {
    const drop = await createDrop(request, baseURL!, 3, "Feed");
    const a = await buyer(browser, baseURL!, "Cleo");
    const b = await buyer(browser, baseURL!, "Dev");
    await expect(card(b.page, drop)).toContainText("No purchases yet.");

    await card(a.page, drop).getByRole("button", { name: "Reserve" }).click();
    await card(a.page, drop).getByRole("button", { name: "Purchase" }).click();
    await expect(a.page.getByRole("status").filter({ hasText: "Purchased" })).toBeVisible();
    for (const page of [a.page, b.page]) {
      await expect(card(page, drop).getByTestId("activity")).toHaveText("Cleo");
      await expect(stock(page, drop)).toHaveText("2 of 3 left");
    }
    // The hold is gone: one per buyer, and Cleo has bought her one.
    await card(a.page, drop).getByRole("button", { name: "Reserve" }).click();
    await expect(a.page.getByRole("status").filter({ hasText: "as many of these" })).toBeVisible();
  });

  test("a drop created in the panel appears on another open dashboard", async ({
    browser,
    baseURL,
  }) => {
    const admin = await buyer(browser, baseURL!, "Admin");
    const watcher = await buyer(browser, baseURL!, "Eve");
    const name = `Panel Drop ${Date.now() % 100000}`;

    const panel = admin.page.locator(".admin-panel");
    await panel.getByText("Create a drop").click();
    await panel.getByLabel("Admin token").fill("wrong-token");
    await panel.getByLabel("Name").fill(name);
    await panel.getByLabel("Price (USD)").fill("120");
    await panel.getByLabel("Units").fill("7");
    await panel.getByRole("button", { name: "Create drop" }).click();
    await expect(panel.getByText("That admin token is not valid.")).toBeVisible();

    await panel.getByLabel("Admin token").fill(ADMIN_TOKEN);
    await panel.getByLabel("Price (USD)").fill("12.345");
    await panel.getByRole("button", { name: "Create drop" }).click();
    await expect(panel.getByText("price must be an amount")).toBeVisible();

    await panel.getByLabel("Price (USD)").fill("120.00");
    await panel.getByRole("button", { name: "Create drop" }).click();
    await expect(stock(watcher.page, name)).toHaveText("7 of 7 left");
    await expect(card(watcher.page, name)).toContainText("$120.00");
    expect([...admin.errors, ...watcher.errors]).toEqual([]);
  });
});

test("the dashboard at desktop and phone width", async ({ page }, testInfo) => {
  await page.goto("/");
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  for (const [label, width, height] of [
    ["desktop", 1280, 900],
    ["phone", 390, 844],
  ] as const) {
    await page.setViewportSize({ width, height });
    const path = testInfo.outputPath(`dashboard-${label}.png`);
    await page.screenshot({ path, fullPage: true });
    await testInfo.attach(`dashboard-${label}`, { path, contentType: "image/png" });
  }
});

test("a scheduled drop counts down and opens by itself", async ({ browser, request, baseURL }) => {
  const name = `Scheduled ${Date.now() % 100000}`;
  const startsAt = new Date(Date.now() + 5_000).toISOString();
  const created = await request.post(`${baseURL}/api/v1/drops`, {
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
    data: { name, price_cents: 5000, total_stock: 2, starts_at: startsAt },
  });
  expect(created.status()).toBe(201);
  const a = await buyer(browser, baseURL!, "Ivy");

  const button = card(a.page, name).getByRole("button", { name: /Opens in 0:0\d/ });
  await expect(button).toBeDisabled();
  await expect(card(a.page, name).getByRole("button", { name: "Reserve" })).toBeEnabled({
    timeout: 15_000,
  });
  await card(a.page, name).getByRole("button", { name: "Reserve" }).click();
  await expect(card(a.page, name).getByTestId("countdown")).toBeVisible();
  expect(a.errors).toEqual([]);
});
