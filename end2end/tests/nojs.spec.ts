import { expect, test } from "@playwright/test";
import { card, createDrop, stock } from "./helpers";

// The "no-javascript" project: every step is a plain form post and a full page load.
test("without JavaScript a buyer signs in, reserves and buys", async ({ page, request, baseURL }) => {
  const drop = await createDrop(request, baseURL!, 2, "No Script");
  await page.goto("/");
  await expect(stock(page, drop)).toHaveText("2 of 2 left");

  await page.getByLabel("Display name").fill("Hana");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("user-name")).toHaveText("Hana");

  await card(page, drop).getByRole("button", { name: "Reserve" }).click();
  await expect(card(page, drop).getByTestId("countdown")).toBeVisible();
  await expect(stock(page, drop)).toHaveText("1 of 2 left");

  await card(page, drop).getByRole("button", { name: "Purchase" }).click();
  await expect(card(page, drop).getByTestId("activity")).toHaveText("Hana");
  await expect(stock(page, drop)).toHaveText("1 of 2 left");
});
