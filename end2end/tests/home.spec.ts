import { expect, test } from "@playwright/test";

test("the dashboard arrives rendered and comes alive after hydration", async ({ page }) => {
  const errors: Error[] = [];
  page.on("pageerror", (error) => errors.push(error));

  const response = await page.goto("/");
  expect(response?.status()).toBe(200);
  // First paint: the seeded drops and their stock are in the HTML itself, not fetched later.
  const html = await response!.text();
  for (const name of ["Aurora Runner OG", "Midnight Court Low", "Solar Flare Hi"]) {
    expect(html).toContain(name);
  }
  expect(html).toMatch(/class="stock-left">\d+</);

  // Only the WASM sets this, once the app is interactive.
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");

  // A sign-in handled by the hydrated app: no page load happens, so the marker survives.
  await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
  await page.getByLabel("Display name").fill("Hydra");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("user-name")).toHaveText("Hydra");
  await expect(page.getByRole("status").filter({ hasText: "Welcome, Hydra." })).toBeVisible();
  expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);

  expect(errors).toEqual([]);
});
