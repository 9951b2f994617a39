// Signing in through the Matrix OAuth 2.0 API (the spec's "OAuth 2.0 authentication API", what MAS
// and WSPR offer) with matrix-js-sdk's helpers: the server's auth metadata (`getAuthMetadata`),
// dynamic client registration (`OAuth2.registerClient`), the authorization code grant with PKCE
// (`generateAuthorizationCodeGrantUrl`, `completeAuthorizationCodeGrant`); the running client
// then refreshes its access token by itself and revokes both tokens at sign-out.
//
// The flow leaves the app: the browser goes to the server's sign-in page and comes back to the
// app's address with `?code=…&state=…`. What the app needs to finish (the client id, the PKCE
// verifier, the device id it asked for) waits in localStorage under the `state`.
import { createClient, OAuth2, type AccessTokens, type ICreateClientOpts, type ValidatedAuthMetadata } from "matrix-js-sdk";
import { saveSession, type FetchLike, type Session } from "./auth";

/** What an OAuth session keeps beside the access token. */
export interface OAuthSession {
  clientId: string;
  refreshToken: string;
  /** the server's account page (MFA, passkeys, email, sessions), if it has one */
  accountUrl?: string;
  /** the account page's actions (`org.matrix.sessions_list`, …) */
  accountActions?: string[];
}

/** A sign-in under way: kept between leaving for the server's page and coming back. */
interface Pending {
  baseUrl: string;
  clientId: string;
  codeVerifier: string;
  deviceId: string;
  redirectUri: string;
  created: number;
}

const PENDING_PREFIX = "wspr.oauth.pending.";
const CLIENTS_KEY = "wspr.oauth.clients";
/** a sign-in not finished within this long is forgotten */
const PENDING_TTL_MS = 60 * 60 * 1000;

export const CLIENT_NAME = "WSPR";

/** The server's OAuth 2.0 metadata, or null when it doesn't offer the API (Synapse without MAS, old servers). */
export async function oauthMetadata(baseUrl: string, fetchFn?: FetchLike): Promise<ValidatedAuthMetadata | null> {
  const client = createClient({ baseUrl, fetchFn: fetchFn ?? ((input, init) => fetch(input, init)) });
  try {
    const metadata = await client.getAuthMetadata();
    return usableForUs(metadata) ? metadata : null;
  } catch {
    // 404/M_UNRECOGNIZED, invalid metadata, or unreachable: sign in with a password
    return null;
  }
}

/** What this app needs of the API: dynamic registration, the code grant with S256, refresh, revocation. */
export function usableForUs(m: ValidatedAuthMetadata): boolean {
  return (
    !!m.registration_endpoint &&
    !!m.revocation_endpoint &&
    m.response_types_supported.includes("code") &&
    m.response_modes_supported.includes("query") &&
    m.grant_types_supported.includes("authorization_code") &&
    m.grant_types_supported.includes("refresh_token") &&
    m.code_challenge_methods_supported.includes("S256")
  );
}

export type LoginFlow = { kind: "oauth"; metadata: ValidatedAuthMetadata; canRegister: boolean } | { kind: "password" };

/** OAuth when the server offers it (whatever else it offers), else the password form. */
export function chooseFlow(metadata: ValidatedAuthMetadata | null): LoginFlow {
  if (!metadata || !usableForUs(metadata)) return { kind: "password" };
  return { kind: "oauth", metadata, canRegister: (metadata.prompt_values_supported ?? []).includes("create") };
}

/** The app's address, where the server sends the browser back: the app's root, without query or hash. */
export function redirectUriFor(loc: { origin: string; pathname: string }): string {
  return loc.origin + "/";
}

/** Client ids registered earlier, per issuer and redirect URI (a client registers once per server). */
function knownClients(storage: Storage): Record<string, string> {
  try {
    const v: unknown = JSON.parse(storage.getItem(CLIENTS_KEY) ?? "{}");
    return v && typeof v === "object" ? (v as Record<string, string>) : {};
  } catch {
    return {};
  }
}

async function clientIdFor(metadata: ValidatedAuthMetadata, redirectUri: string, storage: Storage): Promise<string> {
  const key = `${metadata.issuer} ${redirectUri}`;
  const known = knownClients(storage);
  if (known[key]) return known[key];
  const clientId = await OAuth2.registerClient(metadata, {
    client_name: CLIENT_NAME,
    client_uri: new URL(redirectUri).origin + "/",
    redirect_uris: [redirectUri],
    application_type: "web",
  });
  storage.setItem(CLIENTS_KEY, JSON.stringify({ ...known, [key]: clientId }));
  return clientId;
}

function randomState(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * Registers the app with the server if needed and returns the authorization URL to send the browser
 * to (`prompt=create` for "Create account" when the server supports it). The PKCE verifier and the
 * chosen device id wait in `storage` under the state.
 */
export async function beginOAuth(
  baseUrl: string,
  metadata: ValidatedAuthMetadata,
  opts: { register: boolean; redirectUri: string; storage?: Storage },
): Promise<string> {
  const storage = opts.storage ?? localStorage;
  forgetStalePending(storage);
  const clientId = await clientIdFor(metadata, opts.redirectUri, storage);
  const oauth = new OAuth2(metadata, { clientId });
  const state = randomState();
  const pending: Pending = {
    baseUrl,
    clientId,
    codeVerifier: oauth.context.codeVerifier,
    deviceId: oauth.context.deviceId,
    redirectUri: opts.redirectUri,
    created: Date.now(),
  };
  storage.setItem(PENDING_PREFIX + state, JSON.stringify(pending));
  const prompt = opts.register && (metadata.prompt_values_supported ?? []).includes("create") ? "create" : undefined;
  return oauth.generateAuthorizationCodeGrantUrl(state, opts.redirectUri, "query", prompt);
}

function forgetStalePending(storage: Storage, now = Date.now()): void {
  for (let i = storage.length - 1; i >= 0; i--) {
    const k = storage.key(i);
    if (!k?.startsWith(PENDING_PREFIX)) continue;
    try {
      const p = JSON.parse(storage.getItem(k) ?? "null") as Pending | null;
      if (!p || now - p.created > PENDING_TTL_MS) storage.removeItem(k);
    } catch {
      storage.removeItem(k);
    }
  }
}

/** The server's answer in the app's address, if this page load is one. */
export function callbackParams(search: string): { code?: string; state: string; error?: string; errorDescription?: string } | null {
  const q = new URLSearchParams(search);
  const state = q.get("state");
  if (!state || (!q.get("code") && !q.get("error"))) return null;
  return { state, code: q.get("code") ?? undefined, error: q.get("error") ?? undefined, errorDescription: q.get("error_description") ?? undefined };
}

export class OAuthCallbackError extends Error {}

/** The device id granted in the token's scope (`urn:matrix:client:device:ID`, or the unstable MSC2967 form). */
export function deviceIdFromScope(scope: string | undefined): string | null {
  for (const s of (scope ?? "").split(" ")) {
    const m = /^urn:matrix:(?:client|org\.matrix\.msc2967\.client):device:(.+)$/.exec(s);
    if (m) return m[1];
  }
  return null;
}

/**
 * Finishes a sign-in from the server's redirect: checks the state against the sign-in this browser
 * started, exchanges the code (with the PKCE verifier), asks whoami who signed in. The state is
 * used once.
 */
export async function completeOAuth(
  params: { code?: string; state: string; error?: string; errorDescription?: string },
  opts: { storage?: Storage; fetchFn?: FetchLike } = {},
): Promise<Session> {
  const storage = opts.storage ?? localStorage;
  const key = PENDING_PREFIX + params.state;
  const raw = storage.getItem(key);
  storage.removeItem(key);
  let pending: Pending | null;
  try {
    pending = raw ? (JSON.parse(raw) as Pending) : null;
  } catch {
    pending = null;
  }
  if (!pending || Date.now() - pending.created > PENDING_TTL_MS) {
    throw new OAuthCallbackError("This sign-in wasn't started here, or it took too long. Start again.");
  }
  if (params.error) {
    throw new OAuthCallbackError(params.error === "access_denied" ? "Access wasn't allowed." : `The server said: ${params.errorDescription ?? params.error}`);
  }
  if (!params.code) throw new OAuthCallbackError("The server sent no authorization code.");
  const fetchFn: FetchLike = opts.fetchFn ?? ((input, init) => fetch(input, init));
  const anon = createClient({ baseUrl: pending.baseUrl, fetchFn });
  const metadata = await anon.getAuthMetadata();
  const oauth = new OAuth2(metadata, { clientId: pending.clientId, deviceId: pending.deviceId, codeVerifier: pending.codeVerifier });
  const tokens = await oauth.completeAuthorizationCodeGrant(params.code, pending.redirectUri);
  if (!tokens.refresh_token) throw new OAuthCallbackError("The server gave no refresh token.");
  const authed = createClient({ baseUrl: pending.baseUrl, accessToken: tokens.access_token, fetchFn });
  const who = await authed.whoami();
  const deviceId = who.device_id ?? deviceIdFromScope(tokens.scope) ?? pending.deviceId;
  return {
    baseUrl: pending.baseUrl,
    userId: who.user_id,
    deviceId,
    accessToken: tokens.access_token,
    oauth: {
      clientId: pending.clientId,
      refreshToken: tokens.refresh_token,
      accountUrl: metadata.account_management_uri,
      accountActions: metadata.account_management_actions_supported,
    },
  };
}

/**
 * The client options of an OAuth session: its refresh token and client id (the SDK then refreshes
 * an expired access token and revokes both at logout), and the refreshed tokens saved so a reload
 * keeps the session.
 */
export function oauthClientOptions(session: Session, save: (s: Session) => void = saveSession): Partial<ICreateClientOpts> {
  const o = session.oauth;
  if (!o) return {};
  let latest = session;
  return {
    refreshToken: o.refreshToken,
    oauthClientId: o.clientId,
    onTokenRefresh: (t: AccessTokens) => {
      latest = { ...latest, accessToken: t.accessToken, oauth: { ...o, ...latest.oauth, refreshToken: t.refreshToken ?? latest.oauth?.refreshToken ?? o.refreshToken } };
      save(latest);
    },
  };
}

/** A link into the server's account page, for one of its actions when it supports it. */
export function accountLink(o: OAuthSession | undefined, action?: string, extra: Record<string, string> = {}): string | null {
  if (!o?.accountUrl) return null;
  if (!action || !(o.accountActions ?? []).includes(action)) return o.accountUrl;
  const u = new URL(o.accountUrl);
  u.searchParams.set("action", action);
  for (const [k, v] of Object.entries(extra)) u.searchParams.set(k, v);
  return u.toString();
}
