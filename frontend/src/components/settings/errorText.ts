import { describeError } from "../../lib/errors";

/** Our own errors say it plainly; the server's and the network's get describeError's words. */
export function errorText(e: unknown): string {
  if (e instanceof Error && !("errcode" in e) && !("httpStatus" in e)) return e.message;
  const f = describeError(e);
  return `${f.title}${f.detail ? `. ${f.detail}` : ""}`;
}
