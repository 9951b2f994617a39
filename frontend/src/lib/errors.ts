// Turns anything thrown by fetch / the homeserver / the SDK (MatrixError, ConnectionError) into a
// sentence a person understands.

export class UnreachableError extends Error {
  constructor(public readonly target: string, cause?: unknown) {
    super(`Can't reach ${target}`);
    this.name = "UnreachableError";
    (this as { cause?: unknown }).cause = cause;
  }
}

export interface FriendlyError {
  title: string;
  detail?: string;
  /** milliseconds the user should wait before retrying (rate limits) */
  retryAfterMs?: number;
}

function field<T = unknown>(err: unknown, ...path: string[]): T | undefined {
  let cur: unknown = err;
  for (const p of path) {
    if (cur == null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur as T | undefined;
}

export function retryAfterMs(err: unknown): number | undefined {
  const fromBody = field<number>(err, "data", "retry_after_ms");
  if (typeof fromBody === "number") return fromBody;
  const sdkGetter = field<() => number>(err, "getRetryAfterMs");
  if (typeof sdkGetter === "function") {
    try {
      const v = (sdkGetter as () => number | null).call(err);
      if (typeof v === "number") return v;
    } catch {
      /* ignore */
    }
  }
  return undefined;
}

export function formatWait(ms: number): string {
  const s = Math.max(1, Math.ceil(ms / 1000));
  if (s < 60) return `${s} second${s === 1 ? "" : "s"}`;
  const m = Math.ceil(s / 60);
  return `${m} minute${m === 1 ? "" : "s"}`;
}

export function describeError(err: unknown, context: "login" | "register" | "general" = "general"): FriendlyError {
  if (err instanceof UnreachableError || field(err, "name") === "ConnectionError" || err instanceof TypeError) {
    return {
      title: "Can't reach the server",
      detail: "Check the server address and your internet connection, then try again.",
    };
  }
  const errcode = field<string>(err, "errcode") ?? field<string>(err, "data", "errcode");
  const status = field<number>(err, "httpStatus");
  const serverMsg = field<string>(err, "data", "error");

  switch (errcode) {
    case "M_LIMIT_EXCEEDED": {
      const wait = retryAfterMs(err);
      return {
        title: "Too many attempts",
        detail: wait ? `The server asked us to slow down. Try again in ${formatWait(wait)}.` : "The server asked us to slow down. Wait a moment and try again.",
        retryAfterMs: wait,
      };
    }
    case "M_FORBIDDEN":
      if (context === "login") return { title: "Wrong username or password", detail: "Check both and try again." };
      return { title: "Not allowed", detail: serverMsg ?? "The server refused this action." };
    case "M_USER_DEACTIVATED":
      return { title: "This account has been deactivated" };
    case "M_USER_IN_USE":
      return { title: "That username is taken", detail: "Pick another one." };
    case "M_INVALID_USERNAME":
      return { title: "That username isn't allowed", detail: "Use lowercase letters, digits and . _ = - / only." };
    case "M_EXCLUSIVE":
      return { title: "That username is reserved", detail: "Pick another one." };
    case "M_WEAK_PASSWORD":
      return { title: "Password too weak", detail: serverMsg ?? "Choose a longer password." };
    case "M_UNKNOWN_TOKEN":
      return { title: "You've been signed out", detail: "Your session ended on the server. Sign in again." };
    case "M_NOT_FOUND":
      return { title: "Not found", detail: serverMsg ?? "It doesn't exist or you can't see it." };
    case "M_TOO_LARGE":
      return { title: "File too large", detail: "The server doesn't accept files this big." };
    case "M_REGISTRATION_DISABLED":
      return { title: "Registration is closed", detail: "This server doesn't allow new accounts. Ask its admin for an invite." };
  }
  if (context === "register" && status === 403) {
    return { title: "Registration is closed", detail: serverMsg ?? "This server doesn't allow new accounts." };
  }
  if (status === 429) return { title: "Too many attempts", detail: "Wait a moment and try again." };
  if (typeof status === "number" && status >= 500) {
    return { title: "The server had a problem", detail: "Try again in a little while." };
  }
  const message = serverMsg ?? (err instanceof Error ? err.message : String(err));
  return { title: "Something went wrong", detail: message };
}

/** What to say for a message we couldn't decrypt, keyed by matrix-js-sdk's DecryptionFailureCode. */
export function describeDecryptionFailure(code: string | null | undefined): { text: string; hint: string } {
  switch (code) {
    case "MEGOLM_KEY_WITHHELD_FOR_UNVERIFIED_DEVICE":
      return {
        text: "The sender didn't share the key with this device because it isn't verified.",
        hint: "Verify this device from another session (Settings → Security).",
      };
    case "MEGOLM_KEY_WITHHELD":
      return { text: "The sender chose not to share the key for this message.", hint: "Ask them to resend it." };
    case "HISTORICAL_MESSAGE_NO_KEY_BACKUP":
    case "HISTORICAL_MESSAGE_BACKUP_UNCONFIGURED":
      return {
        text: "This message was sent before you signed in here.",
        hint: "Restore your history with your recovery key (Settings → Security).",
      };
    case "HISTORICAL_MESSAGE_WORKING_BACKUP":
      return { text: "This message's key isn't in your backup.", hint: "It can't be recovered on this device." };
    case "HISTORICAL_MESSAGE_USER_NOT_JOINED":
      return { text: "You weren't in the room when this was sent.", hint: "Only members at the time can read it." };
    case "SENDER_IDENTITY_PREVIOUSLY_VERIFIED":
      return { text: "The sender's identity changed since you verified them.", hint: "Verify them again before trusting this." };
    case "UNSIGNED_SENDER_DEVICE":
    case "UNKNOWN_SENDER_DEVICE":
      return { text: "Sent from a device its owner hasn't verified.", hint: "Ask the sender to verify their device." };
    case "OLM_UNKNOWN_MESSAGE_INDEX":
      return { text: "You joined this conversation after the message was sent.", hint: "Restore from backup or ask the sender to resend." };
    case "MEGOLM_UNKNOWN_INBOUND_SESSION_ID":
    default:
      return {
        text: "Waiting for the key to decrypt this message.",
        hint: "It usually arrives within seconds. If not, restore from your recovery key or ask the sender to open the app.",
      };
  }
}
