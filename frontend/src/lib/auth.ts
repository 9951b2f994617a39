import { HomeserverError, UnreachableError } from "./errors";
import type { FetchLike } from "./discovery";

export interface Session {
  baseUrl: string;
  userId: string;
  deviceId: string;
  accessToken: string;
}

const SESSION_KEY = "wspr.session";

export function loadSession(storage: Storage = localStorage): Session | null {
  try {
    const raw = storage.getItem(SESSION_KEY);
    if (!raw) return null;
    const s = JSON.parse(raw);
    if (s && s.baseUrl && s.userId && s.deviceId && s.accessToken) return s as Session;
  } catch {
    /* corrupt: treat as signed out */
  }
  return null;
}

export function saveSession(s: Session, storage: Storage = localStorage): void {
  storage.setItem(SESSION_KEY, JSON.stringify(s));
}

export function clearSession(storage: Storage = localStorage): void {
  storage.removeItem(SESSION_KEY);
}

async function post(fetchFn: FetchLike, baseUrl: string, path: string, body: unknown): Promise<{ status: number; json: any }> {
  let res: Response;
  try {
    res = await fetchFn(`${baseUrl}${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch (e) {
    throw new UnreachableError(baseUrl, e);
  }
  let json: any = {};
  try {
    json = await res.json();
  } catch {
    json = {};
  }
  return { status: res.status, json };
}

function toError(status: number, json: any): HomeserverError {
  return new HomeserverError(status, json?.errcode, json?.error ?? `HTTP ${status}`, json ?? {});
}

export function localpartOf(username: string): string {
  const u = username.trim();
  // accept "@alice:server" as well as "alice"
  const m = /^@([^:]+):/.exec(u);
  return m ? m[1] : u.replace(/^@/, "");
}

export async function passwordLogin(
  baseUrl: string,
  username: string,
  password: string,
  fetchFn: FetchLike = (u, i) => fetch(u, i),
): Promise<Session> {
  const user = username.trim();
  const { status, json } = await post(fetchFn, baseUrl, "/_matrix/client/v3/login", {
    type: "m.login.password",
    identifier: { type: "m.id.user", user: user.startsWith("@") ? user : localpartOf(user) },
    password,
    initial_device_display_name: deviceDisplayName(),
  });
  if (status !== 200) throw toError(status, json);
  return { baseUrl, userId: json.user_id, deviceId: json.device_id, accessToken: json.access_token };
}

export type RegistrationNeeds = { kind: "token" } | { kind: "unsupported"; stages: string[] };

export class RegistrationNeedsInput extends Error {
  constructor(public readonly needs: RegistrationNeeds) {
    super(needs.kind === "token" ? "A registration token is required" : `Unsupported registration steps: ${needs.stages.join(", ")}`);
  }
}

const SUPPORTED_STAGES = new Set(["m.login.dummy", "m.login.registration_token"]);

/** Picks the first flow we can complete by ourselves, preferring ones that need nothing from the user. */
export function chooseFlow(flows: { stages: string[] }[], haveToken: boolean): string[] | null {
  const doable = flows.filter((f) => f.stages.every((s) => SUPPORTED_STAGES.has(s)));
  const noToken = doable.find((f) => !f.stages.includes("m.login.registration_token"));
  if (noToken) return noToken.stages;
  const withToken = doable.find((f) => f.stages.includes("m.login.registration_token"));
  if (withToken) {
    if (!haveToken) throw new RegistrationNeedsInput({ kind: "token" });
    return withToken.stages;
  }
  return null;
}

/** Registers with User-Interactive Auth: m.login.dummy and m.login.registration_token stages. */
export async function register(
  baseUrl: string,
  username: string,
  password: string,
  registrationToken?: string,
  fetchFn: FetchLike = (u, i) => fetch(u, i),
): Promise<Session> {
  const body: Record<string, unknown> = {
    username: localpartOf(username),
    password,
    initial_device_display_name: deviceDisplayName(),
  };
  let flow: string[] | null = null;
  for (let round = 0; round < 6; round++) {
    const { status, json } = await post(fetchFn, baseUrl, "/_matrix/client/v3/register?kind=user", body);
    if (status === 200) {
      return { baseUrl, userId: json.user_id, deviceId: json.device_id, accessToken: json.access_token };
    }
    if (status !== 401 || !Array.isArray(json?.flows)) throw toError(status, json);
    // a 401 that carries an errcode after we answered a stage means that stage failed (e.g. bad token)
    if (round > 0 && json.errcode) throw toError(status, json);
    flow ??= chooseFlow(json.flows, !!registrationToken);
    if (!flow) {
      throw new RegistrationNeedsInput({ kind: "unsupported", stages: json.flows.flatMap((f: { stages: string[] }) => f.stages) });
    }
    const done: string[] = json.completed ?? [];
    const next = flow.find((s) => !done.includes(s));
    if (!next) throw toError(status, json);
    const auth: Record<string, unknown> = { type: next, session: json.session };
    if (next === "m.login.registration_token") auth.token = registrationToken;
    body.auth = auth;
  }
  throw new HomeserverError(401, "M_FORBIDDEN", "Registration did not complete");
}

export function deviceDisplayName(): string {
  const ua = typeof navigator !== "undefined" ? navigator.userAgent : "";
  const browser = /Firefox/.test(ua) ? "Firefox" : /Edg\//.test(ua) ? "Edge" : /Chrom/.test(ua) ? "Chrome" : /Safari/.test(ua) ? "Safari" : "Browser";
  const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Mac OS/.test(ua) ? "macOS" : /Windows/.test(ua) ? "Windows" : /Linux/.test(ua) ? "Linux" : "";
  return `WSPR Web (${browser}${os ? ` on ${os}` : ""})`;
}
