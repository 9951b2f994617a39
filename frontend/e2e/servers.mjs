// Homeserver + static file server lifecycle for the end-to-end tests.
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { createServer as createNetServer } from "node:net";
import { mkdtempSync, readFileSync, writeFileSync, existsSync, statSync, createReadStream, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, extname, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const frontendDir = resolve(here, "..");
export const repoDir = resolve(frontendDir, "..");
/** the built app under test: dist/, or E2E_DIST (a build elsewhere, e.g. `vite build --outDir`) */
export const distDir = process.env.E2E_DIST ? resolve(process.env.E2E_DIST) : join(frontendDir, "dist");
const venvBin = process.env.E2E_VENV_BIN || join(repoDir, ".venv", "bin");

export function freePort() {
  return new Promise((res, rej) => {
    const s = createNetServer();
    s.unref();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

function logTail(logFile) {
  try {
    return readFileSync(logFile, "utf8").split("\n").slice(-15).join("\n");
  } catch {
    return "";
  }
}

async function waitForHttp(url, timeoutMs, proc, logFile) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    if (proc && proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}:\n${logTail(logFile)}`);
    try {
      const r = await fetch(url);
      if (r.ok) return;
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = e.message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${url} (${last}):\n${logTail(logFile)}`);
}

function pyEditYaml(file, pythonSnippet) {
  // Edits a YAML file with the virtualenv's PyYAML (Synapse and WSPR both depend on it).
  const code = `import sys, yaml\nf=sys.argv[1]\nc=yaml.safe_load(open(f))\n${pythonSnippet}\nyaml.safe_dump(c, open(f,'w'), sort_keys=False)\n`;
  execFileSync(join(venvBin, "python"), ["-c", code, file], { stdio: "inherit" });
}

const children = new Set();
process.on("exit", () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.once(sig, () => {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    process.exit(130);
  });
}

function spawnLogged(cmd, args, opts, logFile) {
  const fd = (() => {
    writeFileSync(logFile, "");
    return logFile;
  })();
  const proc = spawn(cmd, args, { ...opts, stdio: ["ignore", "pipe", "pipe"], detached: false });
  children.add(proc);
  proc.once("exit", () => children.delete(proc));
  const append = (d) => {
    try {
      writeFileSync(fd, d, { flag: "a" });
    } catch {}
  };
  proc.stdout.on("data", append);
  proc.stderr.on("data", append);
  return proc;
}

async function stopProc(proc) {
  if (!proc || proc.exitCode !== null) return;
  proc.kill("SIGTERM");
  await Promise.race([new Promise((r) => proc.once("exit", r)), new Promise((r) => setTimeout(r, 5000))]);
  if (proc.exitCode === null) proc.kill("SIGKILL");
}

const SYNAPSE_RATE = { per_second: 1000, burst_count: 1000 };

export async function startSynapse(workDir) {
  const port = await freePort();
  const dir = join(workDir, "synapse");
  const cfg = join(dir, "homeserver.yaml");
  execFileSync(join(venvBin, "python"), ["-m", "synapse.app.homeserver", "--server-name", "localhost", "--config-path", cfg, "--data-directory", dir, "--generate-config", "--report-stats=no"], {
    stdio: "ignore",
    cwd: workDir,
  });
  pyEditYaml(
    cfg,
    `
c['listeners'] = [{'port': ${port}, 'bind_addresses': ['127.0.0.1'], 'type': 'http', 'tls': False, 'x_forwarded': False, 'resources': [{'names': ['client'], 'compress': False}]}]
c['database'] = {'name': 'sqlite3', 'args': {'database': '${dir}/homeserver.db'}}
c['enable_registration'] = True
c['enable_registration_without_verification'] = True
# Synapse publishes nothing to its room directory by default; a community server lets members do it
c['room_list_publication_rules'] = [{'action': 'allow'}]
c['report_stats'] = False
c['trusted_key_servers'] = []
c['suppress_key_server_warning'] = True
c['presence'] = {'enabled': True}
r = ${JSON.stringify(SYNAPSE_RATE)}
for k in ['rc_message','rc_registration','rc_login','rc_admin_redaction','rc_joins','rc_invites','rc_3pid_validation','rc_key_requests','rc_room_creation','rc_media_create','rc_delayed_event_mgmt','rc_reports','rc_presence']:
    c[k] = r
c['rc_login'] = {'address': r, 'account': r, 'failed_attempts': r}
c['rc_joins'] = {'local': r, 'remote': r}
c['rc_invites'] = {'per_room': r, 'per_user': r, 'per_issuer': r}
c['rc_presence'] = {'per_user': r}
c.pop('log_config')
`,
  );
  const logFile = join(workDir, "synapse.log");
  const proc = spawnLogged(join(venvBin, "python"), ["-m", "synapse.app.homeserver", "-c", cfg], { cwd: dir }, logFile);
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitForHttp(`${baseUrl}/_matrix/client/versions`, 120000, proc, logFile).catch(async (e) => {
    await stopProc(proc); // never leave a half-started server behind
    throw e;
  });
  return { kind: "synapse", baseUrl, appUrl: null, logFile, stop: () => stopProc(proc) };
}

/** `extraConfig`: Python lines editing the parsed wspr.yaml (`c`), after the defaults below. */
export async function startWspr(workDir, { extraConfig = "" } = {}) {
  const port = await freePort();
  const fedPort = await freePort();
  const sfuPort = await freePort();
  const dir = join(workDir, "wspr");
  const wspr = join(venvBin, "wspr");
  if (!existsSync(wspr)) throw new Error(`${wspr} not found: install the homeserver (pip install -e .) or use E2E_HOMESERVER=synapse`);
  execFileSync(wspr, ["init", dir, "--server-name", "localhost", "--http-port", String(port), "--federation-port", String(fedPort)], { stdio: "inherit", cwd: workDir });
  const cfg = join(dir, "wspr.yaml");
  pyEditYaml(
    cfg,
    `
c['enable_registration'] = True
c['rate_limits'] = {'enabled': False}
# the app signs in through the OAuth 2.0 API wherever a server offers it; these tests drive its password
# form, so WSPR's OAuth API is off unless a test turns it on (oauth.e2e.mjs: c['oauth'] = {'enabled': True})
c['oauth'] = {**(c.get('oauth') or {}), 'enabled': False}
# serve this checkout's build (the config's default is the dist/ beside the homeserver's code)
c['web_client'] = {'enabled': True, 'path': ${JSON.stringify(distDir)}}
# stay on loopback, and don't collide with other WSPR instances on this machine
fed = (c.get('listeners') or {}).get('federation')
if isinstance(fed, dict): fed['bind_address'] = '127.0.0.1'
if isinstance(c.get('sfu'), dict):
    c['sfu']['port'] = ${sfuPort}
    c['sfu']['public_url'] = 'ws://127.0.0.1:${sfuPort}'
${extraConfig}
`,
  );
  const logFile = join(workDir, "wspr.log");
  const proc = spawnLogged(wspr, ["run", "-c", cfg], { cwd: dir }, logFile);
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitForHttp(`${baseUrl}/_matrix/client/versions`, 120000, proc, logFile).catch(async (e) => {
    await stopProc(proc); // never leave a half-started server behind
    throw e;
  });
  // WSPR serves the PWA itself at / (from frontend/dist). "localhost" so the service worker gets a secure context.
  let appUrl = `http://localhost:${port}/`;
  const index = await fetch(appUrl).then((r) => (r.ok ? r.text() : ""), () => "");
  if (!index.includes('id="root"')) appUrl = null; // not serving the app (yet): fall back to our static server
  return { kind: "wspr", baseUrl, appUrl, logFile, sfuUrl: `ws://127.0.0.1:${sfuPort}`, stop: () => stopProc(proc) };
}

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".wasm": "application/wasm", ".svg": "image/svg+xml", ".png": "image/png", ".webmanifest": "application/manifest+json", ".json": "application/json" };

/** Serves dist/ like the homeserver will: files as they are, index.html for other navigations. */
export async function startStatic(distDir) {
  const port = await freePort();
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    let file = join(distDir, decodeURIComponent(url.pathname));
    if (!file.startsWith(distDir) || !existsSync(file) || statSync(file).isDirectory()) file = join(distDir, "index.html");
    const headers = { "Content-Type": TYPES[extname(file)] ?? "application/octet-stream" };
    if (file.endsWith("sw.js") || file.endsWith("index.html")) headers["Cache-Control"] = "no-cache";
    res.writeHead(200, headers);
    createReadStream(file).pipe(res);
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return { url: `http://localhost:${port}/`, stop: () => new Promise((r) => server.close(r)) };
}

export function makeWorkDir() {
  return mkdtempSync(join(tmpdir(), "wspr-e2e-"));
}

export function removeWorkDir(dir) {
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {}
}

export { readFileSync };
