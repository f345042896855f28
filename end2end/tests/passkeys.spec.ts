import { expect, test, type CDPSession, type Page } from "@playwright/test";

// Passkeys from the page's own buttons, with Chromium's virtual authenticator (CDP WebAuthn)
// standing in for a phone's fingerprint reader. A passkey is bound to a host name, never an IP
// address: the main server's public_origin is http://localhost:PORT, so these pages open there.
const port = Number(process.env.E2E_PORT ?? 3100);
const origin = `http://localhost:${port}`;

async function authenticator(page: Page): Promise<{ cdp: CDPSession; id: string }> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { cdp, id: authenticatorId };
}

async function openAccountForms(page: Page) {
  await page.locator("details.account summary").click();
  const forms = page.locator("details.account form");
  return {
    signUp: forms.filter({ hasText: "Create an account" }),
    logIn: forms.filter({ hasText: "Log in with a passkey" }),
  };
}

test("sign up with a passkey, sign out, sign in again with it", async ({ page }) => {
  const errors: Error[] = [];
  page.on("pageerror", (error) => errors.push(error));
  const { cdp, id } = await authenticator(page);
  const username = `key_${Date.now() % 1_000_000_000}`;
  await page.goto(`${origin}/`);
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");

  const { signUp } = await openAccountForms(page);
  // The same proof of work as a password's sign-up, in plain sight; a username the server
  // refuses is said in words, and no authenticator is asked.
  await signUp.getByLabel("Username (shown publicly)").fill("no spaces");
  await signUp.getByRole("button", { name: "Sign up with a passkey" }).click();
  await expect(signUp.getByTestId("sign-up-proof")).toHaveText(/Checked you're human in \d+\.\d s/);
  await expect(signUp.locator(".passkey-status")).toHaveText(/A username is 3 to 20 letters/);
  const none = await cdp.send("WebAuthn.getCredentials", { authenticatorId: id });
  expect(none.credentials).toHaveLength(0);

  await signUp.getByLabel("Username (shown publicly)").fill(username);
  await signUp.getByRole("button", { name: "Sign up with a passkey" }).click();
  await expect(page.getByTestId("user-name")).toHaveText(username);
  await expect(page.locator(".connection")).toHaveAttribute("data-state", "live");
  const made = await cdp.send("WebAuthn.getCredentials", { authenticatorId: id });
  expect(made.credentials).toHaveLength(1);

  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page.getByTestId("user-name")).toHaveCount(0);

  const { logIn } = await openAccountForms(page);
  await logIn.getByLabel("Username").fill(username.toUpperCase());
  await logIn.getByRole("button", { name: "Log in with a passkey" }).click();
  await expect(page.getByTestId("user-name")).toHaveText(username);
  // The authenticator signed this sign-in: its counter moved on.
  const used = await cdp.send("WebAuthn.getCredentials", { authenticatorId: id });
  expect(used.credentials[0].signCount).toBeGreaterThan(made.credentials[0].signCount);
  await page.reload();
  await expect(page.getByTestId("user-name")).toHaveText(username);
  expect(errors).toEqual([]);
});

test("a passkey button says what is wrong: no passkey, or not the shop's address", async ({
  page,
}) => {
  await authenticator(page);
  await page.goto(`${origin}/`);
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  const { logIn } = await openAccountForms(page);
  await logIn.getByLabel("Username").fill("nobody_has_this_name");
  await logIn.getByRole("button", { name: "Log in with a passkey" }).click();
  await expect(logIn.getByRole("status")).toHaveText(
    "That username has no passkey here: log in with its password, or sign up.",
  );
  await expect(page.getByTestId("user-name")).toHaveCount(0);

  // The same shop at its IP address: a browser offers no passkey there, and the page says where.
  await page.goto(`http://127.0.0.1:${port}/`);
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  const there = await openAccountForms(page);
  await there.logIn.getByLabel("Username").fill("anyone");
  await there.logIn.getByRole("button", { name: "Log in with a passkey" }).click();
  await expect(there.logIn.getByRole("status")).toHaveText(
    `Passkeys work at ${origin}: open the shop there to use one.`,
  );
});
