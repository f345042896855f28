import { expect, test } from "@playwright/test";
import { ADMIN_TOKEN, buyer, card, createSizedDrop, size, stock } from "./helpers";

test.describe("a drop sold by size", () => {
  test("a buyer picks a size and reserves it; its stock falls on another screen, and a sold-out size is disabled", async ({
    browser,
    request,
    baseURL,
  }) => {
    const drop = await createSizedDrop(request, baseURL!, { "EU 41": 2, "EU 42": 1, "EU 43": 0 }, "Sized");
    const a = await buyer(browser, baseURL!, "Sol");
    const b = await buyer(browser, baseURL!, "Tove");
    await expect(stock(b.page, drop)).toHaveText("3 of 3 left");
    await expect(card(b.page, drop).getByRole("group", { name: "Size" })).toBeVisible();
    await expect(card(b.page, drop).getByTestId("sizes-left")).toHaveText("2 of 3 sizes left");
    // Sold out from the start: shown, said, and not choosable.
    await expect(size(b.page, drop, "EU 43")).toBeDisabled();
    await expect(card(b.page, drop).locator(".size", { hasText: "EU 43" })).toContainText("sold out");

    // The other buyer has EU 42 picked when it sells out under them.
    await size(b.page, drop, "EU 42").check();

    // By keyboard: into the group, the arrow keys move between the sizes still on sale.
    await size(a.page, drop, "EU 41").focus();
    await a.page.keyboard.press("ArrowRight");
    await expect(size(a.page, drop, "EU 42")).toBeChecked();
    await card(a.page, drop).getByRole("button", { name: "Reserve" }).click();
    await expect(card(a.page, drop).getByTestId("countdown")).toBeVisible();
    await expect(card(a.page, drop).getByTestId("held-size")).toHaveText("EU 42");
    await expect(a.page.getByRole("status").filter({ hasText: "Reserved" })).toBeVisible();

    // The other screen: EU 42 fell to none and can no longer be chosen; EU 41 still can, and
    // the card says so at once.
    await expect(stock(b.page, drop)).toHaveText("2 of 3 left");
    await expect(card(b.page, drop).getByTestId("sizes-left")).toHaveText("EU 42 is sold out; 1 size left");
    await expect(size(b.page, drop, "EU 42")).toBeDisabled();
    // Unpicked as it went: a reserve now asks for a size rather than sending none.
    await expect(size(b.page, drop, "EU 42")).not.toBeChecked();
    await expect(card(b.page, drop).locator(".size", { hasText: "EU 42" })).toContainText("sold out");
    await expect(card(b.page, drop).locator(".size", { hasText: "EU 41" })).toContainText("2 left");
    await size(b.page, drop, "EU 41").check();
    await card(b.page, drop).getByRole("button", { name: "Reserve" }).click();
    await expect(card(b.page, drop).getByTestId("countdown")).toBeVisible();
    // The holder sees their hold, not the picker, and the stock still moves.
    await expect(stock(a.page, drop)).toHaveText("1 of 3 left");

    // Given back, the unit returns to its own size on both screens.
    await card(a.page, drop).getByRole("button", { name: "Cancel" }).click();
    await expect(size(a.page, drop, "EU 42")).toBeEnabled();
    await expect(card(a.page, drop).locator(".size", { hasText: "EU 42" })).toContainText("1 left");
    await expect(card(b.page, drop).getByTestId("sizes-left")).toHaveText("2 of 3 sizes left");
    expect([...a.errors, ...b.errors]).toEqual([]);
  });

  test("the panel creates a drop with a size run as typed", async ({ browser, baseURL }) => {
    const admin = await buyer(browser, baseURL!, "Admin");
    const watcher = await buyer(browser, baseURL!, "Wren");
    const name = `Panel Sizes ${Date.now() % 100000}`;
    const panel = admin.page.locator(".admin-panel");
    await panel.getByText("Create a drop").click();
    await panel.getByLabel("Admin token").fill(ADMIN_TOKEN);
    await panel.getByLabel("Name").fill(name);
    await panel.getByLabel("Price (USD)").fill("150");
    await panel.getByLabel("Size run").fill("EU 40 4");
    await panel.getByRole("button", { name: "Create drop" }).click();
    await expect(panel.getByText('sizes must be entries like "EU 42: 5"')).toBeVisible();
    await panel.getByLabel("Size run").fill("EU 40-42: 2, US 13: 1");
    await panel.getByRole("button", { name: "Create drop" }).click();
    await expect(stock(watcher.page, name)).toHaveText("7 of 7 left");
    const labels = await card(watcher.page, name).locator(".size-label").allTextContents();
    expect(labels).toEqual(["EU 40", "EU 41", "EU 42", "US 13"]);
    expect([...admin.errors, ...watcher.errors]).toEqual([]);
  });

  test("on a phone's width the size picker wraps inside its card", async ({ browser, request, baseURL }) => {
    const labels = ["EU 40", "EU 41", "EU 42", "EU 43", "EU 44", "EU 45", "EU 46"];
    const drop = await createSizedDrop(request, baseURL!, Object.fromEntries(labels.map((l) => [l, 3])), "Phone");
    const context = await browser.newContext({ baseURL, viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
    const page = await context.newPage();
    await page.goto("/");
    await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
    const picker = card(page, drop).getByRole("group", { name: "Size" });
    await picker.scrollIntoViewIfNeeded();
    await expect(picker).toBeVisible();
    // Nothing runs off the side: no sideways scroll, every size inside its card.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    const box = (await card(page, drop).boundingBox())!;
    for (const label of labels) {
      const chip = (await card(page, drop).locator(".size", { hasText: label }).boundingBox())!;
      expect(chip.x).toBeGreaterThanOrEqual(box.x);
      expect(chip.x + chip.width).toBeLessThanOrEqual(box.x + box.width);
      // Big enough to tap.
      expect(chip.height).toBeGreaterThanOrEqual(40);
    }
    await context.close();
  });
});
