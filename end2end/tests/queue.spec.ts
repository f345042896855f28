import { expect, test } from "@playwright/test";
import { buyer, card, createQueueDrop, stock } from "./helpers";

test("a queue: a random order at go-live, one turn for one unit, and the line told it is over", async ({
  browser,
  request,
  baseURL,
}) => {
  test.setTimeout(60_000);
  const names = ["Ada", "Bo", "Cy"];
  const buyers = [];
  for (const name of names) {
    buyers.push(await buyer(browser, baseURL!, name));
  }
  const drop = await createQueueDrop(request, baseURL!, 1, "Queue Hi", 12_000);

  // Before go-live: the order is sealed, and each buyer joins the lobby.
  for (const { page } of buyers) {
    const mine = card(page, drop.name);
    await expect(mine.getByText("The order is sealed in advance: SHA-256")).toBeVisible();
    await expect(mine.getByRole("button", { name: "Reserve" })).toHaveCount(0);
    await mine.getByRole("button", { name: "Join the queue" }).click();
    await expect(mine.getByTestId("queue-status")).toContainText("You're in the lobby.");
    await expect(mine.getByRole("button", { name: "Leave the queue" })).toBeVisible();
  }

  // Each buyer may keep a receipt for their place, signed by the server.
  const link = card(buyers[0].page, drop.name).getByTestId("queue-receipt");
  await expect(link).toHaveText("Keep your receipt");
  const href = new URL((await link.getAttribute("href"))!, baseURL).toString();
  const receipt = await (await buyers[0].page.request.get(href)).json();
  expect(receipt.drop_id).toBe(drop.id);
  expect(receipt.signature).toMatch(/^[0-9a-f]{128}$/);

  // After go-live: one unit, so exactly one buyer's turn; the other two see their place.
  const status = (i: number) => card(buyers[i].page, drop.name).getByTestId("queue-status");
  for (let i = 0; i < 3; i++) {
    await expect(status(i)).toHaveText(/Your turn — reserve within|You're number [23] in line/, {
      timeout: 25_000,
    });
  }
  const texts = await Promise.all([0, 1, 2].map((i) => status(i).textContent()));
  const admitted = texts.filter((t) => t!.startsWith("Your turn"));
  expect(admitted).toHaveLength(1);
  const winner = texts.findIndex((t) => t!.startsWith("Your turn"));
  const others = [0, 1, 2].filter((i) => i !== winner);
  const places = others.map((i) => /number (\d)/.exec(texts[i]!)![1]).sort();
  expect(places).toEqual(["2", "3"]);
  for (const i of others) {
    await expect(card(buyers[i].page, drop.name).getByRole("button", { name: "Reserve" })).toHaveCount(0);
  }

  // The buyer whose turn it is reserves and buys; the line hears it is over.
  const winning = card(buyers[winner].page, drop.name);
  await winning.getByRole("button", { name: "Reserve" }).click();
  await expect(winning.getByTestId("countdown")).toBeVisible();
  await winning.getByRole("button", { name: "Purchase" }).click();
  await expect(winning.getByTestId("activity")).toHaveText(names[winner]);
  for (const i of others) {
    await expect(status(i)).toHaveText("Sold out — the queue has closed.");
    await expect(stock(buyers[i].page, drop.name)).toHaveText("0 of 1 left");
  }
  // The order can be checked now.
  await expect(card(buyers[0].page, drop.name).getByRole("link", { name: "Check the order" })).toBeVisible();
  const audit = await request.get(`${baseURL}/api/v1/drops/${drop.id}/audit`);
  expect(audit.status()).toBe(200);
  const published = (await audit.json()).audit;
  expect(published.tickets).toHaveLength(3);
  // The receipt names a ticket of the audit, under the key the audit publishes.
  expect(published.receipt_key).toBe(receipt.public_key);
  expect(published.tickets.map((t: { id: string }) => t.id)).toContain(receipt.ticket);
  for (const { errors } of buyers) {
    expect(errors).toEqual([]);
  }
});
