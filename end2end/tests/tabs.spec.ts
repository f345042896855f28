import { expect, Page, test } from "@playwright/test";
import { buyer, card, createDrop, stock } from "./helpers";

/** Another tab of the same browser (same cookies), on a live dashboard. */
async function anotherTab(context: import("@playwright/test").BrowserContext) {
  const page: Page = await context.newPage();
  const errors: Error[] = [];
  page.on("pageerror", (error) => errors.push(error));
  await page.goto("/");
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  await expect(page.locator(".connection")).toHaveAttribute("data-state", "live");
  return { page, errors };
}

test("every tab of a buyer shows the same holds, without a reload", async ({
  browser,
  request,
  baseURL,
}) => {
  const drop = await createDrop(request, baseURL!, 3, "Two Tabs");
  const other = await createDrop(request, baseURL!, 3, "Two Tabs Again");
  const first = await buyer(browser, baseURL!, "Tess");
  const second = await anotherTab(first.context);
  for (const page of [first.page, second.page]) {
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 1));
  }

  // A hold made in one tab shows in the other...
  await card(first.page, drop).getByRole("button", { name: "Reserve" }).click();
  await expect(card(first.page, drop).getByTestId("countdown")).toBeVisible();
  await expect(card(second.page, drop).getByTestId("countdown")).toBeVisible();

  // ...and cancelled there, it is gone from the first: no countdown, no Purchase to fail.
  await card(second.page, drop).getByRole("button", { name: "Cancel" }).click();
  await expect(card(first.page, drop).getByTestId("countdown")).toHaveCount(0);
  await expect(card(first.page, drop).getByRole("button", { name: "Purchase" })).toHaveCount(0);
  await expect(card(first.page, drop).getByRole("button", { name: "Reserve" })).toBeEnabled();
  await expect(stock(first.page, drop)).toHaveText("3 of 3 left");

  // The other way round (on another drop: a buyer who gave a hold back waits before taking
  // the same drop again): held in the second tab, bought in the first.
  await card(second.page, other).getByRole("button", { name: "Reserve" }).click();
  await expect(card(first.page, other).getByTestId("countdown")).toBeVisible();
  await card(first.page, other).getByRole("button", { name: "Purchase" }).click();
  await expect(card(second.page, other).getByTestId("countdown")).toHaveCount(0);
  await expect(card(second.page, other).getByTestId("activity")).toHaveText("Tess");

  for (const page of [first.page, second.page]) {
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(1);
  }
  expect([...first.errors, ...second.errors]).toEqual([]);
});

test("a reserve form sent again with its key gets the first answer and holds once", async ({
  browser,
  request,
  baseURL,
}) => {
  const drop = await createDrop(request, baseURL!, 5, "Sent Twice");
  const a = await buyer(browser, baseURL!, "Uma");
  const form = card(a.page, drop).locator("form", { has: a.page.locator('input[name="drop_id"]') });
  const dropId = await form.locator('input[name="drop_id"]').inputValue();
  const key = await form.locator('input[name="idempotency_key"]').inputValue();
  expect(key).toMatch(/^[0-9a-f]{32}$/);

  // The same form body twice, as a retry after a lost answer sends it (the tab's cookies).
  const send = () =>
    a.page.request.post(`${baseURL}/rpc/reserve_unit`, {
      form: { drop_id: dropId, idempotency_key: key },
      headers: { Accept: "application/json" },
    });
  const first = await send();
  const again = await send();
  expect(first.status()).toBe(200);
  expect(again.status()).toBe(200);
  expect((await again.json()).id).toBe((await first.json()).id);
  expect(again.headers()["idempotent-replayed"]).toBe("true");
  await expect(stock(a.page, drop)).toHaveText("4 of 5 left");
  // The hold it made reaches the tab as its own.
  await expect(card(a.page, drop).getByTestId("countdown")).toBeVisible();
  expect(a.errors).toEqual([]);
});

test("a double-submitted reserve holds once, and the next click acts again", async ({
  browser,
  request,
  baseURL,
}) => {
  const drop = await createDrop(request, baseURL!, 5, "Double Click");
  const a = await buyer(browser, baseURL!, "Vic");
  const form = card(a.page, drop).locator("form", { has: a.page.locator('input[name="drop_id"]') });
  await form.evaluate((f: HTMLFormElement) => {
    f.requestSubmit();
    f.requestSubmit();
  });
  await expect(card(a.page, drop).getByTestId("countdown")).toBeVisible();
  await expect(stock(a.page, drop)).toHaveText("4 of 5 left");
  await expect(a.page.getByRole("status").filter({ hasText: "already hold" })).toHaveCount(0);
  // Messages go by themselves: none is left covering the buttons under it.
  await expect(a.page.locator(".toast")).toHaveCount(0, { timeout: 10_000 });

  // The key was renewed once the reserve completed: after a cancel, Reserve asks anew (a
  // replay of the first answer would show the old hold again) and is told to wait, since a
  // buyer who gives a hold back cannot take it again at once.
  await card(a.page, drop).getByRole("button", { name: "Cancel" }).click();
  await expect(stock(a.page, drop)).toHaveText("5 of 5 left");
  await card(a.page, drop).getByRole("button", { name: "Reserve" }).click();
  await expect(
    a.page.getByRole("status").filter({ hasText: "you may reserve it again in" }),
  ).toBeVisible();
  await expect(card(a.page, drop).getByTestId("countdown")).toHaveCount(0);
  await expect(stock(a.page, drop)).toHaveText("5 of 5 left");
  expect(a.errors).toEqual([]);
});
