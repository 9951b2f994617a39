// The OPAQUE client the sign-in pages run (@serenity-kit/opaque), as a line-based JSON
// service for tests/homeserver/oauth/test_opaque.py: each input line
// {"side": "client"|"server", "fn": name, "args": {...}} gets one output line
// {"ok": result} or {"err": message}.
import * as opaque from "@serenity-kit/opaque";
import readline from "node:readline";

await opaque.ready;
const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  const { side, fn, args } = JSON.parse(line);
  let out;
  try {
    out = { ok: opaque[side][fn](args) ?? null };
  } catch (e) {
    out = { err: String(e) };
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}
