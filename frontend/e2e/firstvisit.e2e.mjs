// A first visit to the app served by WSPR: what it costs on the wire (bytes and requests, the service
// worker's precaching included), and that the big files arrive compressed.   Always on WSPR (it serves the app).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ART, newPage, startEnvironment } from "./browser.mjs";

let env;

before(async () => {
  env = await startEnvironment({ kind: "wspr", name: "firstvisit" });
  assert.ok(env.hs.appUrl, "WSPR serves the app itself");
});

after(async () => {
  await env?.stop();
});

const mib = (n) => `${(n / 1048576).toFixed(2)} MiB`;

test("a first visit downloads the app compressed", async () => {
  const page = await newPage(env, "visitor");
  const seen = [];
  const pending = [];
  page.context().on("requestfinished", (req) => {
    pending.push(
      (async () => {
        const res = await req.response();
        const sizes = await req.sizes();
        seen.push({
          url: new URL(req.url()).pathname,
          fromWorker: !!req.serviceWorker(),
          status: res?.status(),
          encoding: res ? ((await res.allHeaders())["content-encoding"] ?? "") : "",
          accept: (await req.allHeaders())["accept-encoding"] ?? "",
          body: sizes.responseBodySize,
          headers: sizes.responseHeadersSize,
        });
      })(),
    );
  });
  await page.goto(env.appUrl);
  await page.getByRole("button", { name: "Sign in", exact: true }).waitFor();
  // the service worker is active once it has precached the app shell (the crypto WASM included)
  await page.evaluate(() => navigator.serviceWorker.ready.then(() => undefined));
  await page.waitForLoadState("networkidle");
  await page.waitForTimeout(500);
  await Promise.all(pending);

  const total = seen.reduce((n, r) => n + r.body + r.headers, 0);
  const byPage = seen.filter((r) => !r.fromWorker);
  const byWorker = seen.filter((r) => r.fromWorker);
  const lines = seen.map((r) => `${r.fromWorker ? "sw  " : "page"} ${String(r.status).padEnd(4)} ${(r.encoding || "-").padEnd(5)} ${String(r.body + r.headers).padStart(9)}  ${r.url}`);
  const summary = `first visit: ${seen.length} requests (${byPage.length} by the page, ${byWorker.length} by the service worker), ${total} bytes (${mib(total)}) on the wire`;
  writeFileSync(join(ART, "firstvisit.txt"), [summary, ...lines, ""].join("\n"));
  console.log(`# ${summary}`);

  // every JS, CSS, WASM and HTML response came compressed, in an encoding the browser asked for
  const compressible = seen.filter((r) => r.status === 200 && /\.(js|css|wasm|html|svg|webmanifest)$|\/$/.test(r.url));
  assert.ok(compressible.some((r) => r.url.endsWith(".wasm")), "the crypto WASM was fetched");
  for (const r of compressible) {
    if (r.body < 1024) continue; // too small to be worth compressing (the build leaves these as they are)
    assert.ok(r.encoding === "br" || r.encoding === "gzip", `${r.url} arrived without compression`);
    assert.ok(r.accept.includes(r.encoding), `${r.url}: ${r.encoding} was not asked for (${r.accept})`);
  }
  const wasm = compressible.filter((r) => r.url.endsWith(".wasm"));
  for (const r of wasm) assert.ok(r.body < 3_000_000, `the WASM is ${r.body} bytes on the wire`);
});
