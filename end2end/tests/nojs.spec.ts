import { expect, test } from "@playwright/test";
import { card, createDrop, createQueueDrop, createSizedDrop, size, stock } from "./helpers";

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

test("without JavaScript the size picker is a form: a buyer picks a size and holds it", async ({
  page,
  request,
  baseURL,
}) => {
  const drop = await createSizedDrop(request, baseURL!, { "US 9": 1, "US 10": 2 }, "No Script Sizes");
  await page.goto("/");
  await page.getByLabel("Display name").fill("Kai");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("user-name")).toHaveText("Kai");

  // The form will not go without a size: the browser itself asks for one.
  await card(page, drop).getByRole("button", { name: "Reserve" }).click();
  await expect(card(page, drop).getByTestId("countdown")).toHaveCount(0);
  await size(page, drop, "US 10").check();
  await card(page, drop).getByRole("button", { name: "Reserve" }).click();
  await expect(card(page, drop).getByTestId("countdown")).toBeVisible();
  await expect(card(page, drop).getByTestId("held-size")).toHaveText("US 10");
  await expect(stock(page, drop)).toHaveText("2 of 3 left");
});

test("without JavaScript a buyer joins a queue, leaves it and sees their place in line", async ({
  page,
  request,
  baseURL,
}) => {
  test.setTimeout(60_000);
  const drop = await createQueueDrop(request, baseURL!, 1, "No Script Queue", 8_000);
  // Someone else waits in the lobby too (through the API).
  const session = await request.post(`${baseURL}/api/v1/session`, { data: { name: "Ivo" } });
  expect(session.status()).toBe(201);
  expect((await request.post(`${baseURL}/api/v1/drops/${drop.id}/queue`)).status()).toBe(201);

  await page.goto("/");
  await page.getByLabel("Display name").fill("Jun");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("user-name")).toHaveText("Jun");
  const mine = card(page, drop.name);
  await mine.getByRole("button", { name: "Join the queue" }).click();
  await expect(mine.getByTestId("queue-status")).toContainText("You're in the lobby.");
  await mine.getByRole("button", { name: "Leave the queue" }).click();
  await expect(mine.getByRole("button", { name: "Join the queue" })).toBeVisible();

  // After go-live the other buyer has the one turn; joining now is at the back of the line.
  await expect(async () => {
    await page.reload();
    await expect(mine.getByTestId("queue-status")).toContainText("The line is moving.", { timeout: 500 });
  }).toPass({ timeout: 20_000 });
  await mine.getByRole("button", { name: "Join the queue" }).click();
  await expect(mine.getByTestId("queue-status")).toContainText("You're number 2 in line: you're next");
  await expect(mine.getByRole("button", { name: "Reserve" })).toHaveCount(0);
});

test("without JavaScript a buyer enters a draw and the page says whether they won", async ({
  page,
  request,
  baseURL,
}) => {
  test.setTimeout(60_000);
  const drop = await createQueueDrop(request, baseURL!, 1, "No Script Draw", 8_000, "draw");
  await page.goto("/");
  await page.getByLabel("Display name").fill("Kai");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("user-name")).toHaveText("Kai");
  const mine = card(page, drop.name);
  await expect(mine.getByRole("button", { name: "Reserve" })).toHaveCount(0);
  await mine.getByRole("button", { name: "Enter the draw" }).click();
  await expect(mine.getByTestId("queue-status")).toContainText("Entered — draw in");
  await mine.getByRole("button", { name: "Withdraw" }).click();
  await mine.getByRole("button", { name: "Enter the draw" }).click();
  await expect(mine.getByTestId("queue-status")).toContainText("Entered — draw in");

  // The only entrant of a one-pair draw wins it: a reload after the draw shows the hold.
  await expect(async () => {
    await page.reload();
    await expect(mine.getByTestId("queue-status")).toContainText("You won — buy within", { timeout: 500 });
  }).toPass({ timeout: 20_000 });
  await mine.getByRole("button", { name: "Purchase" }).click();
  await expect(mine.getByTestId("activity")).toHaveText("Kai");
});
