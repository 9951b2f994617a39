// matrix-js-sdk signs in to a homeserver through the Matrix OAuth 2.0 API, with its own
// helpers: discovery (getAuthMetadata), dynamic registration (OAuth2.registerClient), the
// authorisation URL with PKCE (generateAuthorizationCodeGrantUrl), the code exchange
// (completeAuthorizationCodeGrant); then it syncs and sends, refreshes its expired access
// token on its own (the client's OAuth token refresher), and signs out (revocation).
// The sign-in and consent pages are driven with plain HTTP requests, as a browser would.
// Usage: node oauth_login.mjs <base_url> <username> <password>
// Prints progress on stderr and "OAUTH-JS-OK {json}" on stdout when every check passed.

if (!Promise.withResolvers) {
  // Node 20 lacks it; the SDK uses it.
  Promise.withResolvers = function () {
    let resolve, reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
const sdk = await import("matrix-js-sdk");

const [baseUrl, username, password] = process.argv.slice(2);
const log = (...args) => console.error("[oauth_login.mjs]", ...args);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
try {
  sdk.logger.setLevel?.("warn");
} catch {
  /* keep the default */
}

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

// A browser: cookies, no automatic redirects, CSRF token from the page's form.
const cookies = new Map();
async function browse(url, form) {
  const headers = {};
  if (cookies.size) headers.Cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  let body;
  if (form) {
    headers["Content-Type"] = "application/x-www-form-urlencoded";
    body = new URLSearchParams(form).toString();
  }
  const res = await fetch(new URL(url, baseUrl), { method: form ? "POST" : "GET", headers, body, redirect: "manual" });
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(";");
    const i = pair.indexOf("=");
    cookies.set(pair.slice(0, i), pair.slice(i + 1));
  }
  return { status: res.status, location: res.headers.get("location"), text: await res.text() };
}
const csrfOf = (page) => {
  const m = page.match(/name="csrf" value="([^"]+)"/);
  check(m, "the page has a CSRF token");
  return m[1];
};

// Follows this server's redirects; returns the redirect that leaves it, or the page.
async function follow(res) {
  for (let i = 0; i < 10 && res.status >= 300 && res.status < 400; i++) {
    const next = new URL(res.location, baseUrl);
    if (next.origin !== new URL(baseUrl).origin) return { leave: next.toString() };
    res = await browse(next.toString());
  }
  return { page: res };
}

const redirectUri = "https://app.js.example.org/callback";

// 1. Discovery and registration.
const anon = sdk.createClient({ baseUrl });
const metadata = await anon.getAuthMetadata();
log("issuer", metadata.issuer);
const clientId = await sdk.OAuth2.registerClient(metadata, {
  client_name: "matrix-js-sdk test",
  client_uri: "https://js.example.org/",
  redirect_uris: [redirectUri],
  application_type: "web",
});
log("registered client", clientId);

// 2. Authorisation code with PKCE through the pages.
const oauth = new sdk.OAuth2(metadata, { clientId });
const state = "state-" + Math.random().toString(36).slice(2);
const authUrl = await oauth.generateAuthorizationCodeGrantUrl(state, redirectUri);
check(authUrl.includes("code_challenge_method=S256"), "PKCE S256");
let step = await follow(await browse(authUrl));
check(step.page && step.page.text.includes('value="password"'), "the sign-in page");
step = await follow(
  await browse("/_wspr/login", { step: "password", username, password, csrf: csrfOf(step.page.text) }),
);
check(step.page && step.page.text.includes("Allow access?"), "the consent page");
step = await follow(await browse("/_wspr/consent", { decision: "approve", csrf: csrfOf(step.page.text) }));
check(step.leave && step.leave.startsWith(redirectUri + "#"), `redirect back in the fragment: ${step.leave}`);
const callback = new URLSearchParams(new URL(step.leave).hash.slice(1));
check(callback.get("state") === state, "state echoed");
const tokens = await oauth.completeAuthorizationCodeGrant(callback.get("code"), redirectUri);
log("token response", { expires_in: tokens.expires_in, scope: tokens.scope });
check(tokens.refresh_token, "a refresh token");
check(tokens.scope.includes(`urn:matrix:client:device:${oauth.context.deviceId}`), "the device scope granted");

// 3. A client on those tokens: whoami, sync, send.
const refreshed = [];
const client = sdk.createClient({
  baseUrl,
  accessToken: tokens.access_token,
  refreshToken: tokens.refresh_token,
  oauthClientId: clientId,
  deviceId: oauth.context.deviceId,
  onTokenRefresh: (t) => refreshed.push(t),
});
const whoami = await client.whoami();
check(whoami.device_id === oauth.context.deviceId, "the device the client chose");
client.credentials.userId = whoami.user_id;
await client.startClient({ initialSyncLimit: 1 });
await new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error("no first sync")), 20000);
  client.once(sdk.ClientEvent.Sync, (s) => {
    clearTimeout(t);
    s === "PREPARED" ? resolve() : reject(new Error(`sync state ${s}`));
  });
});
const { room_id: roomId } = await client.createRoom({ name: "oauth" });
await client.sendTextMessage(roomId, "signed in with OAuth 2.0");
log("synced and sent in", roomId);

// 4. The access token expires; the client refreshes it by itself on the 401.
const firstAccessToken = client.getAccessToken();
await sleep((tokens.expires_in + 1) * 1000);
const again = await client.whoami();
check(again.user_id === whoami.user_id, "whoami after refresh");
check(refreshed.length >= 1, "onTokenRefresh was called");
check(client.getAccessToken() !== firstAccessToken, "a new access token");
check(client.getRefreshToken() !== tokens.refresh_token, "a rotated refresh token");
log("refreshed", refreshed.length, "time(s)");

// 5. Sign out: the SDK revokes the tokens at the revocation endpoint.
const lastAccessToken = client.getAccessToken();
await client.logout(true);
const res = await fetch(new URL("/_matrix/client/v3/account/whoami", baseUrl), {
  headers: { Authorization: `Bearer ${lastAccessToken}` },
});
const body = await res.json();
check(res.status === 401 && body.errcode === "M_UNKNOWN_TOKEN", `revoked token refused: ${res.status} ${JSON.stringify(body)}`);
console.log(
  "OAUTH-JS-OK " + JSON.stringify({ userId: whoami.user_id, deviceId: whoami.device_id, roomId, clientId, refreshes: refreshed.length }),
);
process.exit(0);
