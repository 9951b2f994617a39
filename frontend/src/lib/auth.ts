// Signing in and signing up with matrix-js-sdk: its `loginRequest`, `registerRequest` and
// `InteractiveAuth` (User-Interactive Auth) against a throwaway, token-less client.
import {
  AuthType,
  createClient,
  InteractiveAuth,
  MatrixError,
  NoAuthFlowFoundError,
  type IAuthData,
  type MatrixClient,
  type UIAFlow,
} from "matrix-js-sdk";
import type { OAuthSession } from "./oauth";

export interface Session {
  baseUrl: string;
  userId: string;
  deviceId: string;
  accessToken: string;
  /** signed in through the OAuth 2.0 API: the refresh token and client id (see oauth.ts) */
  oauth?: OAuthSession;
}

/** How to reach the network; tests pass their own. */
export type FetchLike = typeof fetch;

const SESSION_KEY = "wspr.session";

export function loadSession(storage: Storage = localStorage): Session | null {
  try {
    const raw = storage.getItem(SESSION_KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Partial<Session> | null;
    if (s && s.baseUrl && s.userId && s.deviceId && s.accessToken) {
      // an OAuth session without its refresh token can't last: treat as signed out
      if (s.oauth && !(s.oauth.clientId && s.oauth.refreshToken)) return null;
      return s as Session;
    }
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

export function localpartOf(username: string): string {
  const u = username.trim();
  // accept "@alice:server" as well as "alice"
  const m = /^@([^:]+):/.exec(u);
  return m ? m[1] : u.replace(/^@/, "");
}

/** A client for the unauthenticated requests before there is a session. */
function anonymousClient(baseUrl: string, fetchFn?: FetchLike): MatrixClient {
  return createClient({ baseUrl, fetchFn: fetchFn ?? ((input, init) => fetch(input, init)) });
}

function sessionFrom(baseUrl: string, r: { user_id: string; device_id?: string; access_token?: string }): Session {
  if (!r.device_id || !r.access_token) throw new MatrixError({ errcode: "M_UNKNOWN", error: "The server did not sign the new account in" }, 200);
  return { baseUrl, userId: r.user_id, deviceId: r.device_id, accessToken: r.access_token };
}

export async function passwordLogin(baseUrl: string, username: string, password: string, fetchFn?: FetchLike): Promise<Session> {
  const user = username.trim();
  const r = await anonymousClient(baseUrl, fetchFn).loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user: user.startsWith("@") ? user : localpartOf(user) },
    password,
    initial_device_display_name: deviceDisplayName(),
  });
  return sessionFrom(baseUrl, r);
}

export type RegistrationNeeds = { kind: "token" } | { kind: "unsupported"; stages: string[] };

export class RegistrationNeedsInput extends Error {
  constructor(public readonly needs: RegistrationNeeds) {
    super(needs.kind === "token" ? "A registration token is required" : `Unsupported registration steps: ${needs.stages.join(", ")}`);
  }
}

const TOKEN_STAGES = new Set<string>([AuthType.RegistrationToken, AuthType.UnstableRegistrationToken]);
const SUPPORTED_STAGES = new Set<string>([AuthType.Dummy, ...TOKEN_STAGES]);

/**
 * The flow to follow: one that needs nothing from the user if there is one, else one with a
 * registration token. InteractiveAuth ranks flows only by length, so among equally long flows it
 * could pick one that spends a registration token (or needs one we don't have) when a flow without
 * one exists; we choose first and hand it only that flow.
 */
function preferredFlow(flows: UIAFlow[]): UIAFlow | undefined {
  const doable = flows.filter((f) => f.stages.every((s) => SUPPORTED_STAGES.has(s)));
  return doable.find((f) => !f.stages.some((s) => TOKEN_STAGES.has(s))) ?? doable.find((f) => f.stages.some((s) => TOKEN_STAGES.has(s)));
}

function isUiaChallenge(e: unknown): e is MatrixError & { data: IAuthData } {
  return e instanceof MatrixError && e.httpStatus === 401 && Array.isArray((e.data as IAuthData | undefined)?.flows);
}

/** Registers with User-Interactive Auth: the m.login.dummy and m.login.registration_token stages. */
export async function register(baseUrl: string, username: string, password: string, registrationToken?: string, fetchFn?: FetchLike): Promise<Session> {
  const client = anonymousClient(baseUrl, fetchFn);
  const body = { username: localpartOf(username), password, initial_device_display_name: deviceDisplayName() };
  let challenge: IAuthData;
  try {
    return sessionFrom(baseUrl, await client.registerRequest(body, "user"));
  } catch (e) {
    if (!isUiaChallenge(e)) throw e;
    challenge = e.data;
  }
  const flows = challenge.flows ?? [];
  const flow = preferredFlow(flows);
  if (!flow) throw new RegistrationNeedsInput({ kind: "unsupported", stages: flows.flatMap((f) => f.stages) });
  if (flow.stages.some((s) => TOKEN_STAGES.has(s)) && !registrationToken) throw new RegistrationNeedsInput({ kind: "token" });

  let requests = 0;
  let settled = false;
  const response = await new Promise<Awaited<ReturnType<MatrixClient["registerRequest"]>>>((resolve, reject) => {
    const fail = (e: unknown) => {
      settled = true;
      reject(e instanceof Error ? e : new Error(String(e)));
    };
    const auth = new InteractiveAuth({
      matrixClient: client,
      authData: { ...challenge, flows: [flow] },
      doRequest: (authDict) => {
        // InteractiveAuth answers m.login.dummy again after any failed request while it still knows
        // the flows (a network error, a server that never completes the stage), without end. Once we
        // have an outcome, or after a few rounds, we hold it with a request that never settles.
        if (settled) return new Promise<never>(() => {});
        if (++requests > 6) {
          fail(new MatrixError({ errcode: "M_FORBIDDEN", error: "Registration did not complete" }, 400));
          return new Promise<never>(() => {});
        }
        return client.registerRequest({ ...body, auth: authDict ?? undefined }, "user").catch((e: unknown) => {
          if (!isUiaChallenge(e)) fail(e); // a 401 with flows is the next stage, for InteractiveAuth
          throw e;
        });
      },
      stateUpdated: (stage, status) => {
        // a stage we answered came back with an error (e.g. a wrong registration token)
        if (status.errcode || status.error) return fail(new MatrixError({ errcode: status.errcode || "M_UNKNOWN", error: status.error }, 401));
        if (TOKEN_STAGES.has(stage)) return void auth.submitAuthDict({ type: stage, token: registrationToken });
        fail(new RegistrationNeedsInput({ kind: "unsupported", stages: [stage] }));
      },
      requestEmailToken: () => Promise.reject(new RegistrationNeedsInput({ kind: "unsupported", stages: [AuthType.Email] })),
    });
    auth.attemptAuth().then(resolve, (e: unknown) => {
      if (e instanceof NoAuthFlowFoundError) fail(new RegistrationNeedsInput({ kind: "unsupported", stages: flows.flatMap((f) => f.stages) }));
      else fail(e);
    });
  });
  return sessionFrom(baseUrl, response);
}

export function deviceDisplayName(): string {
  const ua = typeof navigator !== "undefined" ? navigator.userAgent : "";
  const browser = /Firefox/.test(ua) ? "Firefox" : /Edg\//.test(ua) ? "Edge" : /Chrom/.test(ua) ? "Chrome" : /Safari/.test(ua) ? "Safari" : "Browser";
  const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Mac OS/.test(ua) ? "macOS" : /Windows/.test(ua) ? "Windows" : /Linux/.test(ua) ? "Linux" : "";
  return `WSPR Web (${browser}${os ? ` on ${os}` : ""})`;
}
