// From what someone typed to the homeserver's client-server API: matrix-js-sdk's AutoDiscovery
// (spec: "Server Discovery", /.well-known/matrix/client, each candidate checked with /versions).
import { AutoDiscovery, AutoDiscoveryAction, MatrixError } from "matrix-js-sdk";
import { UnreachableError } from "./errors";

/** Normalises what someone typed ("example.org", "https://matrix.example.org/", "localhost:8008") */
export function normaliseInput(input: string): { url?: string; serverName?: string } {
  const t = input.trim().replace(/\/+$/, "");
  if (!t) return {};
  if (/^https?:\/\//i.test(t)) return { url: t };
  // a bare host[:port] - per the spec this is a server name, looked up via .well-known over https,
  // but local dev servers (localhost / 127.x) speak plain http.
  const isLocal = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/i.test(t);
  return { serverName: t, url: `${isLocal ? "http" : "https"}://${t}` };
}

/** Is there a client-server API at `baseUrl`? (AutoDiscovery's own check: /versions, a spec version it supports.) */
async function checkedBaseUrl(baseUrl: string): Promise<string | null> {
  const config = await AutoDiscovery.fromDiscoveryConfig({ "m.homeserver": { base_url: baseUrl } });
  const hs = config["m.homeserver"];
  return hs.state === AutoDiscoveryAction.SUCCESS && hs.base_url ? hs.base_url : null;
}

/**
 * Resolves a homeserver name or URL to the client-server API base URL.
 *
 * AutoDiscovery only looks at `https://<name>/.well-known/matrix/client`. Around it we keep what
 * people type into a sign-in form working: a plain-http local server, the address of the API itself
 * (no .well-known there), and a .well-known that points somewhere dead (we fall back to the address).
 */
export async function resolveHomeserver(input: string): Promise<string> {
  const { url } = normaliseInput(input);
  if (!url) throw new MatrixError({ errcode: "M_INVALID_PARAM", error: "Enter a homeserver name or address." });
  const origin = new URL(url).origin;
  const found = await AutoDiscovery.findClientConfig(origin);
  const hs = found["m.homeserver"];
  if (hs.state === AutoDiscoveryAction.SUCCESS && hs.base_url) return hs.base_url;
  for (const candidate of origin === url ? [url] : [url, origin]) {
    const base = await checkedBaseUrl(candidate);
    if (base) return base;
  }
  throw new UnreachableError(input.trim());
}
