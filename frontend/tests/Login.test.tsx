// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { Login } from "../src/components/Login";

function mockFetch(handler: (url: string, init?: RequestInit) => { status: number; body: unknown } | "down") {
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string, init?: RequestInit) => {
      const r = handler(String(url), init);
      if (r === "down") throw new TypeError("Failed to fetch");
      return new Response(JSON.stringify(r.body), { status: r.status, headers: { "Content-Type": "application/json" } });
    }),
  );
}

function fill(label: string, value: string) {
  fireEvent.change(screen.getByLabelText(label), { target: { value } });
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  localStorage.clear();
});

describe("<Login>", () => {
  it("signs in and hands over the session", async () => {
    mockFetch((url) => {
      if (url.endsWith("/.well-known/matrix/client")) return { status: 404, body: {} };
      if (url.endsWith("/_matrix/client/versions")) return { status: 200, body: { versions: ["v1.11"] } };
      if (url.endsWith("/login")) return { status: 200, body: { user_id: "@alice:hs", device_id: "D", access_token: "t" } };
      return { status: 404, body: {} };
    });
    const onSession = vi.fn();
    render(<Login onSession={onSession} />);
    fill("Homeserver", "http://127.0.0.1:8008");
    fill("Username", "alice");
    fill("Password", "pw");
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    await vi.waitFor(() => expect(onSession).toHaveBeenCalled());
    expect(onSession.mock.calls[0][0]).toMatchObject({ baseUrl: "http://127.0.0.1:8008", userId: "@alice:hs" });
  });

  it("says so when the password is wrong", async () => {
    mockFetch((url) => {
      if (url.endsWith("/_matrix/client/versions")) return { status: 200, body: { versions: ["v1.11"] } };
      if (url.endsWith("/login")) return { status: 403, body: { errcode: "M_FORBIDDEN", error: "Invalid password" } };
      return { status: 404, body: {} };
    });
    render(<Login onSession={() => {}} />);
    fill("Homeserver", "http://127.0.0.1:8008");
    fill("Username", "alice");
    fill("Password", "nope");
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByText("Wrong username or password")).toBeTruthy();
  });

  it("says so when the server can't be reached", async () => {
    mockFetch(() => "down");
    render(<Login onSession={() => {}} />);
    fill("Homeserver", "nowhere.example");
    fill("Username", "alice");
    fill("Password", "pw");
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByText("Can't reach the server")).toBeTruthy();
  });

  it("shows the rate-limit wait and disables the button", async () => {
    mockFetch((url) => {
      if (url.endsWith("/_matrix/client/versions")) return { status: 200, body: { versions: ["v1.11"] } };
      if (url.endsWith("/login")) return { status: 429, body: { errcode: "M_LIMIT_EXCEEDED", error: "Too many", retry_after_ms: 30_000 } };
      return { status: 404, body: {} };
    });
    render(<Login onSession={() => {}} />);
    fill("Homeserver", "http://127.0.0.1:8008");
    fill("Username", "alice");
    fill("Password", "pw");
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByText("Too many attempts")).toBeTruthy();
    expect(screen.getByText(/Try again in 30 seconds/)).toBeTruthy();
    expect(screen.getByRole<HTMLButtonElement>("button", { name: /Wait/ }).disabled).toBe(true);
  });

  it("asks for a registration token when the server requires one", async () => {
    mockFetch((url) => {
      if (url.endsWith("/_matrix/client/versions")) return { status: 200, body: { versions: ["v1.11"] } };
      if (url.includes("/register")) return { status: 401, body: { session: "S", flows: [{ stages: ["m.login.registration_token"] }] } };
      return { status: 404, body: {} };
    });
    render(<Login onSession={() => {}} />);
    fireEvent.click(screen.getByRole("tab", { name: "Create account" }));
    fill("Homeserver", "http://127.0.0.1:8008");
    fill("Username", "alice");
    fill("Password", "pw");
    fill("Confirm password", "pw");
    fireEvent.click(screen.getByRole("button", { name: "Create account" }));
    expect(await screen.findByText("This server needs a registration token")).toBeTruthy();
    expect(screen.getByLabelText("Registration token")).toBeTruthy();
  });

  it("goes to the server's own sign-in page when it offers the OAuth 2.0 API", async () => {
    const metadata = {
      issuer: "http://127.0.0.1:8008/",
      authorization_endpoint: "http://127.0.0.1:8008/_wspr/oauth2/authorize",
      token_endpoint: "http://127.0.0.1:8008/_wspr/oauth2/token",
      revocation_endpoint: "http://127.0.0.1:8008/_wspr/oauth2/revoke",
      registration_endpoint: "http://127.0.0.1:8008/_wspr/oauth2/register",
      response_types_supported: ["code"],
      response_modes_supported: ["query", "fragment"],
      grant_types_supported: ["authorization_code", "refresh_token"],
      code_challenge_methods_supported: ["S256"],
      prompt_values_supported: ["create"],
    };
    mockFetch((url) => {
      if (url.endsWith("/_matrix/client/versions")) return { status: 200, body: { versions: ["v1.11"] } };
      if (url.endsWith("/auth_metadata")) return { status: 200, body: metadata };
      if (url.endsWith("/oauth2/register")) return { status: 201, body: { client_id: "C1" } };
      return { status: 404, body: {} };
    });
    const navigate = vi.fn();
    render(<Login onSession={() => {}} navigate={navigate} />);
    fill("Homeserver", "http://127.0.0.1:8008");
    // once the server is known to offer OAuth, no password here: the server's page asks for it
    await vi.waitFor(() => expect(screen.getByTestId("oauth-note")).toBeTruthy(), { timeout: 3000 });
    expect(screen.queryByLabelText("Password")).toBeNull();
    fireEvent.click(screen.getByRole("tab", { name: "Create account" }));
    fireEvent.click(screen.getByRole("button", { name: "Create account" }));
    await vi.waitFor(() => expect(navigate).toHaveBeenCalled());
    const url = new URL(navigate.mock.calls[0][0] as string);
    expect(url.pathname).toBe("/_wspr/oauth2/authorize");
    expect(url.searchParams.get("prompt")).toBe("create");
    expect(url.searchParams.get("client_id")).toBe("C1");
  });
});
