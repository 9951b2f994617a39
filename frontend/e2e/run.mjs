// npm run e2e: builds dist/ (unless E2E_SKIP_BUILD=1) and runs the end-to-end tests with node's test runner.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const env = { ...process.env };
const chromium = env.CHROMIUM || "/usr/bin/chromium";
if (!existsSync(chromium)) {
  console.error(`e2e: no Chromium at ${chromium}. Install Debian's: apt-get update && apt-get install -y chromium (or set CHROMIUM=/path).`);
  process.exit(1);
}
if (!env.E2E_SKIP_BUILD) {
  const b = spawnSync("npx", ["vite", "build", "--logLevel", "warn"], { cwd: root, stdio: "inherit", env });
  if (b.status !== 0) process.exit(b.status ?? 1);
}
// E2E_ONLY=call (or a group or file name below; or a comma-separated list) runs only those files.
// "chat" is every chat feature (they run against Synapse too); webpush, call and firstvisit need WSPR.
const GROUPS = {
  chat: ["chat", "composer", "reading", "notifications", "find", "threads", "admin"],
  history: ["history"],
  webpush: ["webpush"],
  call: ["call"],
  firstvisit: ["firstvisit"],
  oauth: ["oauth"],
};
const only = env.E2E_ONLY ? env.E2E_ONLY.split(",").map((s) => s.trim()) : null;
const names = only ? only.flatMap((o) => GROUPS[o] ?? [o]) : Object.values(GROUPS).flat();
const files = names.map((n) => `e2e/${n}.e2e.mjs`).filter((f) => existsSync(resolve(root, f)));
if (!files.length) {
  console.error(`e2e: E2E_ONLY=${env.E2E_ONLY} matches none of the test files`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ["--test", "--test-concurrency=1", "--test-timeout=240000", ...files], { cwd: root, stdio: "inherit", env });
process.exit(r.status ?? 1);
