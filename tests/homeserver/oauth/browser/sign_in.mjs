// A person in Chromium on WSPR's sign-in and account pages (driven by
// tests/homeserver/oauth/test_browser_sign_in.py, which runs the server and the SMTP sink):
// sign-up, TOTP enrolment, an e-mail address, sign-out, sign-in with password and TOTP, a
// passkey (Chromium's virtual authenticator) added and used alone and as a second factor, a
// recovery code, a password reset through the e-mailed link, consent for a dynamically
// registered client, and the client's token refresh and revocation.
//
// usage: node sign_in.mjs BASE_URL USERNAME MODE(argon2|opaque)
// Mail: the script prints "MAIL? <address> <count>" and reads one JSON line back (the
// count-th message's text). Last line: "BROWSER-OK {summary}".
import { createHash, createHmac, randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const frontend = join(here, "..", "..", "..", "..", "frontend");
const { chromium } = createRequire(join(frontend, "package.json"))("playwright-core");

const [BASE, USER, MODE] = process.argv.slice(2);
const PASSWORD = "correct horse battery staple";
const NEW_PASSWORD = "a brand new passphrase";
const EMAIL = `${USER}@example.org`;
const REDIRECT = "https://app.client.example.org/callback";
const log = (...a) => console.error(`[browser ${MODE}]`, ...a);

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function mail(address, count) {
  process.stdout.write(`MAIL? ${address} ${count}\n`);
  const { value } = await lines.next();
  return JSON.parse(value);
}
const linkIn = (text) => text.match(/https?:\/\/\S+/)[0];

// RFC 6238 (SHA-1, 6 digits, 30 s), as authenticator apps compute it.
function totp(secret, at = Date.now()) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secret.replace(/\s/g, "")) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 1000 / 30)));
  const h = createHmac("sha1", key).update(counter).digest();
  const o = h[19] & 15;
  return String((h.readUInt32BE(o) & 0x7fffffff) % 1e6).padStart(6, "0");
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const summary = { mode: MODE };
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  // (Pages answering 400, as a refused password does, are not script errors.)
  page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && errors.push(m.text()));
  // The client's redirect URI is not a real site: answer it locally and remember it.
  let callback = null;
  await context.route(`${REDIRECT}**`, (route) => {
    callback = route.request().url();
    route.fulfill({ status: 200, contentType: "text/plain", body: "back in the app" });
  });
  const title = () => page.locator("h1").innerText();
  // Waits for the page titled `want` (a form posted by a page script navigates later).
  const expectTitle = async (want) => {
    try {
      await page.waitForFunction((t) => document.querySelector("h1")?.innerText === t, want, { timeout: 15000 });
    } catch {
      const got = await title().catch(() => "?");
      const text = await page.locator("main").innerText().catch(() => "");
      throw new Error(`expected page "${want}", got "${got}" at ${page.url()}: ${text.slice(0, 400)} ${errors.join(" | ")}`);
    }
  };
  // Waits for the page posted by a click to show `text`: a page.goto() issued while that
  // navigation is still in flight is aborted by it (net::ERR_ABORTED).
  const expectText = async (text) => {
    await page.waitForFunction((t) => document.querySelector("main")?.innerText.includes(t), text, { timeout: 15000 });
  };
  const signOut = async () => {
    await page.goto(`${BASE}/_wspr/account`);
    await page.getByRole("button", { name: "Sign out of this page" }).click();
    await expectTitle("Sign in");
  };
  const passwordStep = async (password) => {
    await page.goto(`${BASE}/_wspr/login`);
    await page.getByLabel("User name").fill(USER);
    await page.getByLabel("Password", { exact: true }).fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
  };

  // 1. Sign-up.
  await page.goto(`${BASE}/_wspr/register`);
  await page.getByLabel("User name").fill(USER);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByLabel("Password again").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expectTitle("Your account");
  log("signed up");

  // 2. TOTP enrolment: the key from the page, a code from it, ten recovery codes shown once.
  await page.goto(`${BASE}/_wspr/account/security/totp`);
  if ((await page.locator("figure.qr svg").count()) !== 1) throw new Error("no QR code");
  await page.locator("summary").click();
  const secret = (await page.locator("code.secret").innerText()).replace(/\s/g, "");
  await page.getByLabel("Code from the app").fill(totp(secret));
  await page.getByRole("button", { name: "Confirm" }).click();
  await expectTitle("Authenticator app");
  const codes = await page.locator("ul.codes code").allInnerTexts();
  if (codes.length !== 10) throw new Error(`expected 10 recovery codes, got ${codes.length}`);
  log("TOTP enrolled");

  // 3. An e-mail address, confirmed by the link sent to it.
  await page.goto(`${BASE}/_wspr/account/email`);
  await page.getByLabel("E-mail address").fill(EMAIL);
  await page.getByRole("button", { name: "Send a confirmation link" }).click();
  await expectText(`We sent a link to ${EMAIL}`);
  await page.goto(linkIn(await mail(EMAIL, 1)));
  await expectTitle("Address confirmed");

  // 4. Sign-out, then sign-in with the password and a TOTP code (the next one: each works once).
  await signOut();
  await passwordStep(PASSWORD);
  await expectTitle("Enter your code");
  await page.getByLabel("Code").fill(totp(secret, Date.now() + 30000));
  await page.getByRole("button", { name: "Verify" }).click();
  await expectTitle("Your account");
  log("signed in with password and TOTP");

  // 5. A passkey, in Chromium's virtual authenticator (user verification: built in).
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });
  await page.goto(`${BASE}/_wspr/account/security`);
  await page.getByLabel("Name for the new passkey").fill("Test laptop");
  await page.getByRole("button", { name: "Add a passkey" }).click();
  await expectTitle("Passkey added");
  await page.goto(`${BASE}/_wspr/account/security`);
  if (!(await page.locator("main").innerText()).includes("Test laptop")) throw new Error("passkey not listed");
  // The passkey alone signs in (it verified the user: two factors in one).
  await signOut();
  await page.getByRole("link", { name: "Sign in with a passkey" }).click();
  await expectTitle("Sign in with a passkey");
  await page.getByRole("button", { name: "Use passkey" }).click();
  await expectTitle("Your account");
  log("signed in with a passkey alone");

  // 6. A recovery code as the second factor.
  await signOut();
  await passwordStep(PASSWORD);
  await expectTitle("Enter your code");
  await page.getByRole("link", { name: "Use a recovery code" }).click();
  await page.getByLabel("Recovery code").fill(codes[0]);
  await page.getByRole("button", { name: "Verify" }).click();
  await expectTitle("Your account");
  log("signed in with a recovery code");

  // 7. Password reset through the e-mailed link, then the new password with the passkey as
  //    the second factor.
  await signOut();
  await page.getByRole("link", { name: "Forgot your password?" }).click();
  await page.getByLabel("E-mail address").fill(EMAIL);
  await page.getByRole("button", { name: "Send the link" }).click();
  await expectText(`we sent it a link`);
  await page.goto(linkIn(await mail(EMAIL, 2)));
  await expectTitle("Choose a new password");
  if (!(await page.locator("main").innerText()).includes("recovery key")) throw new Error("no word on encrypted history");
  await page.getByLabel("New password", { exact: true }).fill(NEW_PASSWORD);
  await page.getByLabel("New password again").fill(NEW_PASSWORD);
  await page.getByRole("button", { name: "Set the new password" }).click();
  await expectTitle("Password changed");
  await passwordStep(PASSWORD);
  if ((await title()) !== "Sign in") throw new Error("the old password still works");
  await passwordStep(NEW_PASSWORD);
  await expectTitle("Enter your code");
  await page.getByRole("link", { name: "Use a passkey or security key" }).click();
  await page.getByRole("button", { name: "Use passkey" }).click();
  await expectTitle("Your account");
  log("password reset by e-mail");

  // 8. A dynamically registered client: consent, code exchange, refresh, revocation.
  const client = await (await fetch(`${BASE}/_wspr/oauth2/register`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      client_name: "Browser test app",
      client_uri: "https://client.example.org/",
      redirect_uris: [REDIRECT],
      response_types: ["code"],
      grant_types: ["authorization_code", "refresh_token"],
      token_endpoint_auth_method: "none",
      application_type: "web",
    }),
  })).json();
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  const state = randomBytes(8).toString("hex");
  const authorize = new URL(`${BASE}/_wspr/oauth2/authorize`);
  for (const [k, v] of Object.entries({
    response_type: "code", client_id: client.client_id, redirect_uri: REDIRECT, state, response_mode: "fragment",
    scope: "urn:matrix:client:api:* urn:matrix:client:device:BROWSERDEV1", code_challenge: challenge, code_challenge_method: "S256",
  })) authorize.searchParams.set(k, v);
  await page.goto(authorize.href);
  await expectTitle("Allow access?");
  if (!(await page.locator("main").innerText()).includes("Browser test app")) throw new Error("consent does not name the client");
  await page.getByRole("button", { name: "Allow" }).click();
  await page.waitForURL(`${REDIRECT}**`);
  // The code comes in the fragment (response_mode=fragment), which no request carries.
  const params = new URLSearchParams(new URL(page.url()).hash.slice(1));
  if (!callback) throw new Error("the client's redirect URI was not reached");
  if (params.get("state") !== state) throw new Error("state not returned");
  const tokenRequest = async (form) => {
    const res = await fetch(`${BASE}/_wspr/oauth2/token`, { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(form) });
    const json = await res.json();
    if (!res.ok) throw new Error(`token endpoint: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  const whoami = (token) => fetch(`${BASE}/_matrix/client/v3/account/whoami`, { headers: { Authorization: `Bearer ${token}` } });
  const tokens = await tokenRequest({ grant_type: "authorization_code", code: params.get("code"), redirect_uri: REDIRECT, client_id: client.client_id, code_verifier: verifier });
  const me = await (await whoami(tokens.access_token)).json();
  if (me.device_id !== "BROWSERDEV1") throw new Error(`whoami: ${JSON.stringify(me)}`);
  const refreshed = await tokenRequest({ grant_type: "refresh_token", refresh_token: tokens.refresh_token, client_id: client.client_id });
  if ((await whoami(refreshed.access_token)).status !== 200) throw new Error("refreshed token refused");
  const revoke = await fetch(`${BASE}/_wspr/oauth2/revoke`, {
    method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token: refreshed.access_token, client_id: client.client_id }),
  });
  if (revoke.status !== 200) throw new Error(`revoke: ${revoke.status}`);
  if ((await whoami(refreshed.access_token)).status !== 401) throw new Error("revoked token still works");
  log("OAuth client: consent, refresh, revocation");
  summary.userId = me.user_id;
  summary.pageErrors = errors;
  if (errors.length) throw new Error(`page errors: ${errors.join(" | ")}`);
  process.stdout.write(`BROWSER-OK ${JSON.stringify(summary)}\n`);
} finally {
  await browser.close();
  lines.return?.();
  process.stdin.destroy();
}
