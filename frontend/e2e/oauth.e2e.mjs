// Signing in through the Matrix OAuth 2.0 API (WSPR only: its sign-in pages). WSPR runs with
// `password_login: oauth_only`, so the legacy /login is gone and only OAuth can work, and with a
// 20 s access-token lifetime, so the app has to refresh its token on its own.
// The app's sign-up goes to WSPR's page (prompt=create), the consent page, and back to the app
// with ?code&state; the session survives a reload and the token's expiry; Settings → Account links
// to the account pages; sign-out revokes the token (whoami with it: 401); signing in again
// through the same flow works.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ART, PASSWORD, newPage, startEnvironment } from "./browser.mjs";

const LIFETIME_S = 20;
let env;
let page;
const username = `oa${Date.now().toString(36)}`;

before(async () => {
  env = await startEnvironment({
    kind: "wspr",
    name: "oauth",
    wsprConfig: `
c['oauth'] = {**(c.get('oauth') or {}), 'enabled': True}
c['password_login'] = 'oauth_only'
c['access_token_lifetime'] = ${LIFETIME_S * 1000}
`,
  });
  page = await newPage(env, "oauth");
});

after(async () => {
  await env?.stop();
});

const shot = (name) => page.screenshot({ path: join(ART, `oauth-${name}.png`) }).catch(() => {});
const session = () => page.evaluate(() => JSON.parse(localStorage.getItem("wspr.session") ?? "null"));

async function whoami(token) {
  const r = await fetch(`${env.hs.baseUrl}/_matrix/client/v3/account/whoami`, { headers: { Authorization: `Bearer ${token}` } });
  return { status: r.status, body: await r.json() };
}

/** From the app's form to the server's pages and back into the app (sign-in or sign-up page, then consent). */
async function throughServerPages({ register }) {
  await page.locator('input[name="homeserver"]').fill(env.hs.baseUrl);
  if (register) await page.getByRole("tab", { name: "Create account" }).click();
  // the app found the OAuth API: no password on its own form
  await page.getByTestId("oauth-note").waitFor();
  assert.equal(await page.locator('input[name="password"]').count(), 0, "no password field in the app");
  await shot(register ? "1-app-signup" : "5-app-signin");
  await page.getByRole("button", { name: register ? "Create account" : "Sign in", exact: true }).click();
  await page.waitForURL((u) => u.pathname.startsWith("/_wspr/"));
  const serverOrigin = new URL(page.url()).origin;
  assert.equal(new URL(page.url()).pathname, register ? "/_wspr/register" : "/_wspr/login", `the server's ${register ? "sign-up" : "sign-in"} page`);
  await page.getByLabel("User name").fill(username);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  if (register) await page.getByLabel("Password again").fill(PASSWORD);
  await shot(register ? "2-server-signup" : "6-server-signin");
  await page.getByRole("button", { name: register ? "Create account" : "Sign in" }).click();
  // the consent page names the app
  await page.getByRole("button", { name: "Allow" }).waitFor();
  assert.match(await page.locator("main").innerText(), /WSPR/);
  await page.getByRole("button", { name: "Allow" }).click();
  await page.getByTestId("room-list").waitFor({ timeout: 60000 });
  const back = new URL(page.url());
  assert.equal(back.origin, new URL(env.appUrl).origin, "back in the app");
  assert.equal(back.search, "", "the code and state are gone from the address");
  return serverOrigin;
}

test("sign up through the server's OAuth pages, reload, token refresh, account link, sign out, sign in again", async () => {
  // the legacy password login is gone on this server
  const flows = await (await fetch(`${env.hs.baseUrl}/_matrix/client/v3/login`)).json();
  assert.ok(!flows.flows?.some((f) => f.type === "m.login.password"), `no password login: ${JSON.stringify(flows)}`);

  await page.goto(env.appUrl);
  await throughServerPages({ register: true });
  await shot("3-signed-in");
  let s = await session();
  assert.match(s.userId, new RegExp(`^@${username}:`));
  assert.ok(s.oauth?.refreshToken && s.oauth?.clientId, "an OAuth session with a refresh token");
  assert.ok(s.oauth.accountUrl, "the account page from the metadata");
  const who = await whoami(s.accessToken);
  assert.equal(who.status, 200);
  assert.equal(who.body.device_id, s.deviceId, "the device id the app asked for in the scope");

  // a reload keeps the session
  await page.reload();
  await page.getByTestId("room-list").waitFor({ timeout: 60000 });

  // the access token expires; the app refreshes it by itself (the /sync after expiry gets a 401)
  const first = s.accessToken;
  const deadline = Date.now() + (LIFETIME_S + 60) * 1000;
  for (;;) {
    s = await session();
    if (s.accessToken !== first) break;
    assert.ok(Date.now() < deadline, "the access token was never refreshed");
    await page.waitForTimeout(1000);
  }
  assert.equal((await whoami(s.accessToken)).status, 200, "the refreshed token works");
  // still signed in and working after the refresh: create a room through the app
  await page.reload();
  await page.getByTestId("room-list").waitFor({ timeout: 60000 });

  // Settings → Account: the server's account pages
  await page.getByTestId("open-settings").click();
  await page.getByRole("tab", { name: "Account" }).click();
  const link = page.getByTestId("manage-account");
  assert.equal(await link.getAttribute("href"), s.oauth.accountUrl);
  await shot("4-settings-account");
  const sessionsHref = await page.getByRole("link", { name: "Signed-in sessions" }).getAttribute("href");
  assert.match(sessionsHref, /action=org\.matrix\.sessions_list/);

  // sign out: the tokens are revoked
  await page.getByRole("tab", { name: "Profile" }).click();
  const last = (await session()).accessToken;
  await page.getByTestId("logout").click();
  await page.getByRole("button", { name: "Sign in", exact: true }).waitFor({ timeout: 30000 });
  const after = await whoami(last);
  assert.equal(after.status, 401, `the revoked token is refused: ${JSON.stringify(after.body)}`);
  assert.equal(await page.evaluate(() => localStorage.getItem("wspr.session")), null);

  // sign in again (the server's page may remember the browser: then only the consent page shows)
  await page.locator('input[name="homeserver"]').fill(env.hs.baseUrl);
  await page.getByTestId("oauth-note").waitFor();
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.waitForURL((u) => u.pathname.startsWith("/_wspr/"));
  if (new URL(page.url()).pathname === "/_wspr/login") {
    await page.getByLabel("User name").fill(username);
    await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
  }
  await page.getByRole("button", { name: "Allow" }).click();
  await page.getByTestId("room-list").waitFor({ timeout: 60000 });
  const again = await session();
  assert.equal(again.userId, s.userId);
  assert.notEqual(again.deviceId, s.deviceId, "a new device");
  assert.equal((await whoami(again.accessToken)).status, 200);
  await shot("5-signed-in-again");
});
