import { HomeserverError, UnreachableError } from "./errors";

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

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

async function getJson(fetchFn: FetchLike, url: string, timeoutMs = 8000): Promise<{ status: number; body: any }> {
  const ctl = typeof AbortController !== "undefined" ? new AbortController() : undefined;
  const timer = ctl ? setTimeout(() => ctl.abort(), timeoutMs) : undefined;
  try {
    const res = await fetchFn(url, { signal: ctl?.signal, headers: { Accept: "application/json" } });
    let body: any = null;
    try {
      body = await res.json();
    } catch {
      body = null;
    }
    return { status: res.status, body };
  } finally {
    if (timer) clearTimeout(timer);
  }
}

async function isClientApi(fetchFn: FetchLike, baseUrl: string): Promise<boolean> {
  try {
    const { status, body } = await getJson(fetchFn, `${baseUrl}/_matrix/client/versions`);
    return status === 200 && Array.isArray(body?.versions);
  } catch {
    return false;
  }
}

/**
 * Resolves a homeserver name or URL to the client-server API base URL, following
 * /.well-known/matrix/client (spec: "Server Discovery").
 */
export async function resolveHomeserver(input: string, fetchFn: FetchLike = (u, i) => fetch(u, i)): Promise<string> {
  const { url } = normaliseInput(input);
  if (!url) throw new HomeserverError(0, "M_INVALID_PARAM", "Enter a homeserver name or address.");
  const origin = new URL(url).origin;
  let wellKnownBase: string | undefined;
  try {
    const { status, body } = await getJson(fetchFn, `${origin}/.well-known/matrix/client`);
    if (status === 200 && body && typeof body["m.homeserver"]?.base_url === "string") {
      wellKnownBase = String(body["m.homeserver"].base_url).replace(/\/+$/, "");
    }
  } catch {
    // No well-known (or unreachable): fall back to the URL itself.
  }
  if (wellKnownBase && (await isClientApi(fetchFn, wellKnownBase))) return wellKnownBase;
  if (await isClientApi(fetchFn, url)) return url;
  if (origin !== url && (await isClientApi(fetchFn, origin))) return origin;
  throw new UnreachableError(input.trim());
}
