import { describe, expect, it } from "vitest";
import { MatrixError } from "matrix-js-sdk";
import { describeDecryptionFailure, describeError, formatWait, UnreachableError } from "../src/lib/errors";

describe("describeError", () => {
  it("says wrong password for M_FORBIDDEN at login", () => {
    const e = new MatrixError({ errcode: "M_FORBIDDEN", error: "Invalid username or password" }, 403);
    expect(describeError(e, "login").title).toBe("Wrong username or password");
  });
  it("reports rate limits with the wait", () => {
    const e = new MatrixError({ errcode: "M_LIMIT_EXCEEDED", error: "Too Many Requests", retry_after_ms: 12_300 }, 429);
    const f = describeError(e, "login");
    expect(f.title).toBe("Too many attempts");
    expect(f.retryAfterMs).toBe(12_300);
    expect(f.detail).toContain("13 seconds");
  });
  it("understands the SDK's MatrixError shape", () => {
    const sdkLike = { errcode: "M_LIMIT_EXCEEDED", httpStatus: 429, data: { errcode: "M_LIMIT_EXCEEDED", retry_after_ms: 2000 } };
    expect(describeError(sdkLike).retryAfterMs).toBe(2000);
  });
  it("explains an unreachable server", () => {
    expect(describeError(new UnreachableError("example.org")).title).toBe("Can't reach the server");
    expect(describeError(new TypeError("Failed to fetch")).title).toBe("Can't reach the server");
    expect(describeError({ name: "ConnectionError", message: "fetch failed" }).title).toBe("Can't reach the server");
  });
  it("maps registration problems", () => {
    expect(describeError(new MatrixError({ errcode: "M_USER_IN_USE", error: "taken" }, 400), "register").title).toBe("That username is taken");
    expect(describeError(new MatrixError({ error: "Registration has been disabled" }, 403), "register").title).toBe("Registration is closed");
  });
  it("falls back to the server's message", () => {
    const f = describeError(new MatrixError({ errcode: "M_UNKNOWN", error: "boom" }, 400));
    expect(f.title).toBe("Something went wrong");
    expect(f.detail).toBe("boom");
  });
  it("server errors", () => {
    expect(describeError(new MatrixError({ error: "Bad gateway" }, 502)).title).toBe("The server had a problem");
  });
});

describe("formatWait", () => {
  it("rounds up to seconds and minutes", () => {
    expect(formatWait(1)).toBe("1 second");
    expect(formatWait(59_001)).toBe("1 minute");
    expect(formatWait(45_000)).toBe("45 seconds");
    expect(formatWait(61_000)).toBe("2 minutes");
  });
});

describe("describeDecryptionFailure", () => {
  it("tells what to do for each failure", () => {
    expect(describeDecryptionFailure("HISTORICAL_MESSAGE_NO_KEY_BACKUP").hint).toMatch(/recovery key/);
    expect(describeDecryptionFailure("MEGOLM_KEY_WITHHELD_FOR_UNVERIFIED_DEVICE").hint).toMatch(/Verify this device/);
    expect(describeDecryptionFailure("MEGOLM_UNKNOWN_INBOUND_SESSION_ID").text).toMatch(/Waiting for the key/);
    expect(describeDecryptionFailure(undefined).text).toBeTruthy();
  });
});
