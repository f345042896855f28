import { expect, test } from "@playwright/test";
import { buyer, card, createQueueDrop, stock } from "./helpers";

test("a draw: three entries for one pair, one winner, and a cancelled win passed down the waitlist live", async ({
  browser,
  request,
  baseURL,
}) => {
  test.setTimeout(60_000);
  const names = ["Di", "Ed", "Flo"];
  const buyers = [];
  for (const name of names) {
    buyers.push(await buyer(browser, baseURL!, name));
  }
  const drop = await createQueueDrop(request, baseURL!, 1, "Draw Hi", 12_000, "draw");
  const status = (i: number) => card(buyers[i].page, drop.name).getByTestId("queue-status");

  // Before the draw: no Reserve button, speed counts for nothing; everyone enters.
  for (const { page } of buyers) {
    const mine = card(page, drop.name);
    await expect(mine.getByRole("button", { name: "Reserve" })).toHaveCount(0);
    await mine.getByRole("button", { name: "Enter the draw" }).click();
    // The shop's proof of work, solved by the browser in a worker, in plain sight.
    await expect(mine.getByTestId("proof-status")).toHaveText(/Checked you're human in \d+\.\d s/);
    await expect(mine.getByTestId("queue-status")).toContainText("Entered — draw in");
    await expect(mine.getByRole("button", { name: "Withdraw" })).toBeVisible();
  }

  // The draw: exactly one winner, holding the pair; the others told their waitlist place.
  for (let i = 0; i < 3; i++) {
    await expect(status(i)).toHaveText(
      /You won — buy within|Not this time — you are (1st|2nd) on the waitlist/,
      { timeout: 25_000 },
    );
  }
  const texts = await Promise.all([0, 1, 2].map((i) => status(i).textContent()));
  const winner = texts.findIndex((t) => t!.startsWith("You won"));
  expect(texts.filter((t) => t!.startsWith("You won"))).toHaveLength(1);
  const first = texts.findIndex((t) => t!.includes("1st on the waitlist"));
  const second = texts.findIndex((t) => t!.includes("2nd on the waitlist"));
  expect([winner, first, second].sort()).toEqual([0, 1, 2]);
  await expect(stock(buyers[second].page, drop.name)).toHaveText("0 of 1 left");

  // The winner cancels: the pair goes to the first on the waitlist, whose screen says so
  // without a reload; the last one moves up.
  const winning = card(buyers[winner].page, drop.name);
  await expect(winning.getByTestId("countdown")).toBeVisible();
  await winning.getByRole("button", { name: "Cancel" }).click();
  await expect(status(first)).toHaveText(/A pair came back: it is yours for \d+:\d\d/);
  await expect(status(second)).toHaveText("Not this time — you are 1st on the waitlist");
  await expect(stock(buyers[second].page, drop.name)).toHaveText("0 of 1 left");

  // They buy it: the draw is over for the last one.
  const lucky = card(buyers[first].page, drop.name);
  await lucky.getByRole("button", { name: "Purchase" }).click();
  await expect(lucky.getByTestId("activity")).toHaveText(names[first]);
  await expect(status(second)).toHaveText("Not this time — the draw is over.");
  const audit = await request.get(`${baseURL}/api/v1/drops/${drop.id}/audit`);
  expect(audit.status()).toBe(200);
  const body = (await audit.json()).audit;
  expect(body.tickets).toHaveLength(3);
  expect(body.winners).toHaveLength(1);
  // Final from the draw on; what came after it is read page by page.
  expect(audit.headers()["cache-control"]).toContain("immutable");
  const later = await request.get(`${baseURL}/api/v1/drops/${drop.id}/audit/later`);
  expect(later.status()).toBe(200);
  expect((await later.json()).later.waitlist_moves).toHaveLength(1);
  for (const { errors } of buyers) {
    expect(errors).toEqual([]);
  }
});
