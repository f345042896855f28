import { expect, test } from "@playwright/test";

// A real account from the page's own forms: sign up with a username and a password (after the
// shop's proof of work), sign out, log in again with them; a wrong password and a weak one are
// refused in words a buyer reads.
test("sign up with a password, sign out, log in again; a wrong password is refused", async ({
  page,
}) => {
  const errors: Error[] = [];
  page.on("pageerror", (error) => errors.push(error));
  const username = `fan_${Date.now() % 1_000_000_000}`;
  const password = "violet kettle drums at noon";
  await page.goto("/");
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");

  const account = page.locator("details.account");
  await account.locator("summary").click();
  const signUp = account.locator("form").filter({ hasText: "Create an account" });
  await signUp.getByLabel("Username (shown publicly)").fill(username);
  await signUp.getByLabel("Password (10+ characters, hard to guess)").fill("password1234");
  await signUp.getByRole("button", { name: "Sign up", exact: true }).click();
  // Making an account pays the shop's proof of work first, in plain sight.
  await expect(signUp.getByTestId("sign-up-proof")).toHaveText(/Checked you're human in \d+\.\d s/);
  await expect(page.locator(".toasts")).toContainText("too easy to guess");
  await expect(page.getByTestId("user-name")).toHaveCount(0);

  await signUp.getByLabel("Password (10+ characters, hard to guess)").fill(password);
  await signUp.getByRole("button", { name: "Sign up", exact: true }).click();
  await expect(page.getByTestId("user-name")).toHaveText(username);
  await expect(page.locator(".connection")).toHaveAttribute("data-state", "live");

  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page.getByTestId("user-name")).toHaveCount(0);

  await page.locator("details.account summary").click();
  const logIn = page.locator("details.account form").filter({ hasText: "Log in" }).first();
  await logIn.getByLabel("Username").fill(username);
  await logIn.getByLabel("Password").fill("violet kettle drums at nine");
  await logIn.getByRole("button", { name: "Log in", exact: true }).click();
  await expect(page.locator(".toasts")).toContainText(
    "That username and password do not match an account.",
  );
  await expect(page.getByTestId("user-name")).toHaveCount(0);

  await logIn.getByLabel("Password").fill(password);
  await logIn.getByRole("button", { name: "Log in", exact: true }).click();
  await expect(page.getByTestId("user-name")).toHaveText(username);
  // Signed in for real: the session survives a reload.
  await page.reload();
  await expect(page.getByTestId("user-name")).toHaveText(username);
  expect(errors).toEqual([]);
});
