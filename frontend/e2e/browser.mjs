// What every browser test shares: the homeserver and the app's address, Chromium, and a person
// (a browser context) who registers through the app's own sign-up form.
import { mkdirSync, appendFileSync, copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { frontendDir, makeWorkDir, removeWorkDir, startStatic, startSynapse, startWspr, distDir } from "./servers.mjs";

export const ART = join(frontendDir, "test-artifacts");
export const PASSWORD = "correct horse battery staple";
mkdirSync(ART, { recursive: true });

const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"];

/**
 * Starts the homeserver (`kind`: "wspr" or "synapse"), the app (served by WSPR itself, else by a static
 * server) and Chromium. `stop()` undoes all of it and keeps the server's log in test-artifacts/.
 */
export async function startEnvironment({ kind = process.env.E2E_HOMESERVER || "wspr", name, extraArgs = [], wsprConfig = "" } = {}) {
  const workDir = makeWorkDir();
  const hs = kind === "synapse" ? await startSynapse(workDir) : await startWspr(workDir, { extraConfig: wsprConfig });
  let web;
  let appUrl = hs.appUrl;
  if (!appUrl) {
    web = await startStatic(distDir);
    appUrl = web.url;
  }
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: [...ARGS, ...extraArgs] });
  const consoleLog = join(ART, `console-${name}.log`);
  writeFileSync(consoleLog, "");
  console.log(`# homeserver ${kind} at ${hs.baseUrl}, app at ${appUrl}`);
  return {
    kind,
    hs,
    appUrl,
    browser,
    workDir,
    consoleLog,
    async stop() {
      await browser.close().catch(() => {});
      await web?.stop().catch(() => {});
      await hs.stop().catch(() => {});
      try {
        copyFileSync(hs.logFile, join(ART, `${name}-server.log`));
      } catch {}
      if (process.env.E2E_KEEP) console.log(`# kept ${workDir}`);
      else removeWorkDir(workDir);
    },
  };
}

/** A browser context for one person; console errors and warnings go to the environment's console log. */
export async function newPage(env, who, opts = {}) {
  const context = await env.browser.newContext({ viewport: { width: 1280, height: 800 }, ...opts });
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  page.on("console", (m) => {
    if (process.env.E2E_VERBOSE || m.type() === "error" || m.type() === "warning" || m.text().startsWith("[wspr]")) appendFileSync(env.consoleLog, `[${who}] ${m.type()}: ${m.text()}\n`);
  });
  page.on("pageerror", (e) => appendFileSync(env.consoleLog, `[${who}] pageerror: ${e.message}\n`));
  page.on("dialog", (d) => d.accept(d.type() === "prompt" ? PASSWORD : undefined));
  return page;
}

/** Creates an account through the app's sign-up form and waits for the room list. */
export async function registerInApp(env, page, username) {
  await page.goto(env.appUrl);
  await page.getByRole("tab", { name: "Create account" }).click();
  await page.locator('input[name="homeserver"]').fill(env.hs.baseUrl);
  await page.locator('input[name="username"]').fill(username);
  await page.locator('input[name="password"]').fill(PASSWORD);
  await page.locator('input[name="confirm"]').fill(PASSWORD);
  await page.getByRole("button", { name: "Create account", exact: true }).click();
  await page.getByTestId("room-list").waitFor({ timeout: 60000 });
}

/** Signs in through the app's form (a new device) and waits for the room list. */
export async function signInInApp(env, page, username) {
  await page.goto(env.appUrl);
  await page.locator('input[name="homeserver"]').fill(env.hs.baseUrl);
  await page.locator('input[name="username"]').fill(username);
  await page.locator('input[name="password"]').fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByTestId("room-list").waitFor({ timeout: 60000 });
}

/** A client-server API call outside the browser, as `token`. */
export async function api(env, token, method, path, body) {
  const r = await fetch(`${env.hs.baseUrl}${path}`, {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await r.json();
  if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(data)}`);
  return data;
}

/** Registers an account over the API (no browser), returning its access token and user id. */
export async function registerApi(env, username) {
  const body = { username, password: PASSWORD, auth: { type: "m.login.dummy" }, inhibit_login: false };
  let r = await fetch(`${env.hs.baseUrl}/_matrix/client/v3/register`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  let data = await r.json();
  if (r.status === 401 && data.session) {
    body.auth.session = data.session;
    r = await fetch(`${env.hs.baseUrl}/_matrix/client/v3/register`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    data = await r.json();
  }
  if (r.status !== 200) throw new Error(`register ${username}: ${r.status} ${JSON.stringify(data)}`);
  return { token: data.access_token, userId: data.user_id };
}

export function accessToken(page) {
  return page.evaluate(() => JSON.parse(localStorage.getItem("wspr.session")).accessToken);
}
