import { expect, test } from "@playwright/test";
import { buyer, card, createDrop, stock } from "./helpers";

// Runs against the second server, whose holds last a few seconds.
const shortHoldURL = `http://127.0.0.1:${Number(process.env.E2E_PORT ?? 3100) + 1}`;

test("an unused hold expires and both screens get the unit back", async ({ browser, request }) => {
  const drop = await createDrop(request, shortHoldURL, 1, "Short Hold");
  const a = await buyer(browser, shortHoldURL, "Finn");
  const b = await buyer(browser, shortHoldURL, "Gia");

  await card(a.page, drop).getByRole("button", { name: "Reserve" }).click();
  await expect(card(a.page, drop).getByTestId("countdown")).toBeVisible();
  await expect(stock(b.page, drop)).toHaveText("0 of 1 left");
  await expect(card(b.page, drop).getByRole("button", { name: "Sold out" })).toBeDisabled();

  // No clicks: the deadline passes and the unit comes back everywhere.
  await expect(stock(a.page, drop)).toHaveText("1 of 1 left", { timeout: 15_000 });
  await expect(stock(b.page, drop)).toHaveText("1 of 1 left", { timeout: 15_000 });
  await expect(card(a.page, drop).getByRole("button", { name: "Reserve" })).toBeEnabled();
  await expect(card(b.page, drop).getByRole("button", { name: "Reserve" })).toBeEnabled();
  expect([...a.errors, ...b.errors]).toEqual([]);
});
