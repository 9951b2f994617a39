import { afterEach, describe, expect, it, vi } from "vitest";
import type { ValidatedAuthMetadata } from "matrix-js-sdk";
import { loadSession, saveSession, type Session } from "../src/lib/auth";
import {
  accountLink,
  beginOAuth,
  callbackParams,
  chooseFlow,
  completeOAuth,
  deviceIdFromScope,
  oauthClientOptions,
  oauthMetadata,
  OAuthCallbackError,
} from "../src/lib/oauth";

const HS = "https://hs.example";
const metadata: ValidatedAuthMetadata = {
  issuer: `${HS}/`,
  authorization_endpoint: `${HS}/_wspr/oauth2/authorize`,
  token_endpoint: `${HS}/_wspr/oauth2/token`,
  revocation_endpoint: `${HS}/_wspr/oauth2/revoke`,
  registration_endpoint: `${HS}/_wspr/oauth2/register`,
  response_types_supported: ["code"],
  response_modes_supported: ["query", "fragment"],
  grant_types_supported: ["authorization_code", "refresh_token"],
  code_challenge_methods_supported: ["S256"],
  prompt_values_supported: ["create"],
  account_management_uri: `${HS}/_wspr/account`,
  account_management_actions_supported: ["org.matrix.profile", "org.matrix.sessions_list", "org.matrix.session_view"],
};

type Handler = (url: string, init?: RequestInit) => { status: number; body: unknown };
function server(handler: Handler) {
  const calls: { url: string; body: string }[] = [];
  const fn = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : input.toString();
    calls.push({ url, body: typeof init?.body === "string" ? init.body : init?.body instanceof URLSearchParams ? init.body.toString() : "" });
    const r = handler(url, init);
    return new Response(JSON.stringify(r.body), { status: r.status, headers: { "Content-Type": "application/json" } });
  });
  return { fn, calls };
}

afterEach(() => {
  vi.unstubAllGlobals();
  localStorage.clear();
});

describe("choosing the flow", () => {
  it("OAuth when the server offers usable metadata, with sign-up when it supports prompt=create", () => {
    expect(chooseFlow(metadata)).toMatchObject({ kind: "oauth", canRegister: true });
    expect(chooseFlow({ ...metadata, prompt_values_supported: undefined })).toMatchObject({ kind: "oauth", canRegister: false });
  });
  it("passwords when there is no metadata or it lacks what the app needs", () => {
    expect(chooseFlow(null)).toEqual({ kind: "password" });
    expect(chooseFlow({ ...metadata, code_challenge_methods_supported: ["plain"] })).toEqual({ kind: "password" });
    expect(chooseFlow({ ...metadata, grant_types_supported: ["authorization_code"] })).toEqual({ kind: "password" });
  });
  it("asks the server's auth_metadata; a 404 (Synapse without MAS) or an invalid answer means passwords", async () => {
    const ok = server(() => ({ status: 200, body: metadata }));
    expect(await oauthMetadata(HS, ok.fn)).toMatchObject({ issuer: `${HS}/` });
    expect(ok.calls[0].url).toBe(`${HS}/_matrix/client/v1/auth_metadata`);
    const missing = server(() => ({ status: 404, body: { errcode: "M_UNRECOGNIZED", error: "Unrecognized request" } }));
    expect(await oauthMetadata(HS, missing.fn)).toBeNull();
    const invalid = server(() => ({ status: 200, body: { issuer: HS } }));
    expect(await oauthMetadata(HS, invalid.fn)).toBeNull();
  });
});

describe("the authorization code flow", () => {
  function fakeServer(opts: { deviceInScope?: boolean } = {}) {
    return server((url, init) => {
      if (url.endsWith("/auth_metadata")) return { status: 200, body: metadata };
      if (url.endsWith("/register")) return { status: 201, body: { client_id: "CLIENT" } };
      if (url.endsWith("/token")) {
        const p = init?.body instanceof URLSearchParams ? init.body : new URLSearchParams(typeof init?.body === "string" ? init.body : "");
        if (p.get("code") !== "CODE") return { status: 400, body: { error: "invalid_grant" } };
        return {
          status: 200,
          body: { access_token: "AT", refresh_token: "RT", token_type: "Bearer", expires_in: 300, scope: opts.deviceInScope ? "urn:matrix:client:api:* urn:matrix:client:device:FROMSCOPE" : "urn:matrix:client:api:*" },
        };
      }
      if (url.includes("/account/whoami")) return { status: 200, body: { user_id: "@alice:hs.example", device_id: "DEV1" } };
      return { status: 404, body: { errcode: "M_UNRECOGNIZED" } };
    });
  }

  it("registers once, sends the browser to the authorization endpoint with PKCE S256, and signs in from the callback", async () => {
    const s = fakeServer();
    vi.stubGlobal("fetch", s.fn);
    const url = new URL(await beginOAuth(HS, metadata, { register: true, redirectUri: "http://localhost:8080/" }));
    expect(url.origin + url.pathname).toBe(metadata.authorization_endpoint);
    expect(url.searchParams.get("client_id")).toBe("CLIENT");
    expect(url.searchParams.get("response_mode")).toBe("query");
    expect(url.searchParams.get("code_challenge_method")).toBe("S256");
    expect(url.searchParams.get("prompt")).toBe("create");
    expect(url.searchParams.get("redirect_uri")).toBe("http://localhost:8080/");
    const scope = url.searchParams.get("scope") ?? "";
    expect(scope).toMatch(/urn:matrix:client:device:\S+/);
    const registration = JSON.parse(s.calls.find((c) => c.url.endsWith("/register"))!.body) as { redirect_uris: string[]; client_uri: string; application_type: string };
    expect(registration).toMatchObject({ redirect_uris: ["http://localhost:8080/"], client_uri: "http://localhost:8080/", application_type: "web" });

    // a second sign-in reuses the registered client
    const again = new URL(await beginOAuth(HS, metadata, { register: false, redirectUri: "http://localhost:8080/" }));
    expect(s.calls.filter((c) => c.url.endsWith("/register"))).toHaveLength(1);
    expect(again.searchParams.get("prompt")).toBeNull();

    const state = url.searchParams.get("state")!;
    const params = callbackParams(`?code=CODE&state=${state}`)!;
    const session = await completeOAuth(params, { fetchFn: s.fn });
    expect(session).toEqual({
      baseUrl: HS,
      userId: "@alice:hs.example",
      deviceId: "DEV1",
      accessToken: "AT",
      oauth: { clientId: "CLIENT", refreshToken: "RT", accountUrl: metadata.account_management_uri, accountActions: metadata.account_management_actions_supported },
    });
    const token = new URLSearchParams(s.calls.find((c) => c.url.endsWith("/token"))!.body);
    expect(token.get("grant_type")).toBe("authorization_code");
    expect(token.get("code_verifier")).toMatch(/^[A-Za-z0-9]{43,}$/);
    // the state is single-use
    await expect(completeOAuth(params, { fetchFn: s.fn })).rejects.toBeInstanceOf(OAuthCallbackError);
  });

  it("refuses a callback whose state this browser didn't start (no token request)", async () => {
    const s = fakeServer();
    vi.stubGlobal("fetch", s.fn);
    await beginOAuth(HS, metadata, { register: false, redirectUri: "http://localhost:8080/" });
    await expect(completeOAuth({ code: "CODE", state: "forged" }, { fetchFn: s.fn })).rejects.toThrow(/wasn't started here/);
    expect(s.calls.some((c) => c.url.endsWith("/token"))).toBe(false);
  });

  it("reports the server's refusal", async () => {
    const s = fakeServer();
    vi.stubGlobal("fetch", s.fn);
    const url = new URL(await beginOAuth(HS, metadata, { register: false, redirectUri: "http://localhost:8080/" }));
    const state = url.searchParams.get("state")!;
    await expect(completeOAuth(callbackParams(`?error=access_denied&state=${state}`)!, { fetchFn: s.fn })).rejects.toThrow("Access wasn't allowed.");
  });

  it("reads the callback from the address only when it is one", () => {
    expect(callbackParams("")).toBeNull();
    expect(callbackParams("?state=x")).toBeNull();
    expect(callbackParams("?code=c&state=s")).toEqual({ code: "c", state: "s", error: undefined, errorDescription: undefined });
  });

  it("takes the device id from the granted scope, stable or unstable", () => {
    expect(deviceIdFromScope("urn:matrix:client:api:* urn:matrix:client:device:ABC")).toBe("ABC");
    expect(deviceIdFromScope("urn:matrix:org.matrix.msc2967.client:device:XYZ openid")).toBe("XYZ");
    expect(deviceIdFromScope("openid")).toBeNull();
  });
});

describe("an OAuth session", () => {
  const session: Session = { baseUrl: HS, userId: "@a:hs", deviceId: "D", accessToken: "AT", oauth: { clientId: "C", refreshToken: "RT" } };

  it("gives the client its refresh token and client id, and saves refreshed tokens", () => {
    const saved: Session[] = [];
    const opts = oauthClientOptions(session, (s) => saved.push(s));
    expect(opts).toMatchObject({ refreshToken: "RT", oauthClientId: "C" });
    opts.onTokenRefresh!({ accessToken: "AT2", refreshToken: "RT2" });
    opts.onTokenRefresh!({ accessToken: "AT3", refreshToken: "RT3" });
    expect(saved.at(-1)).toMatchObject({ accessToken: "AT3", oauth: { clientId: "C", refreshToken: "RT3" } });
    expect(oauthClientOptions({ ...session, oauth: undefined })).toEqual({});
  });

  it("survives a reload from storage; one without its refresh token doesn't", () => {
    saveSession(session);
    expect(loadSession()).toEqual(session);
    saveSession({ ...session, oauth: { clientId: "C", refreshToken: "" } });
    expect(loadSession()).toBeNull();
  });

  it("links to the account page and its actions", () => {
    const o = { clientId: "C", refreshToken: "R", accountUrl: `${HS}/_wspr/account`, accountActions: ["org.matrix.sessions_list", "org.matrix.session_view"] };
    expect(accountLink(o)).toBe(`${HS}/_wspr/account`);
    expect(accountLink(o, "org.matrix.sessions_list")).toBe(`${HS}/_wspr/account?action=org.matrix.sessions_list`);
    expect(accountLink(o, "org.matrix.session_view", { device_id: "D" })).toBe(`${HS}/_wspr/account?action=org.matrix.session_view&device_id=D`);
    expect(accountLink(o, "org.matrix.profile")).toBe(`${HS}/_wspr/account`); // unsupported action: the main page
    expect(accountLink({ clientId: "C", refreshToken: "R" })).toBeNull();
  });
});
