import { useState } from "react";
import { describeError } from "../../lib/errors";

/** busy / error / ok state around one action at a time, with errors in words a person understands. */
export function useRun() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [info, setInfo] = useState<string | null>(null);
  async function run(fn: () => Promise<unknown>, ok?: string): Promise<boolean> {
    setBusy(true);
    setError(null);
    setInfo(null);
    try {
      await fn();
      if (ok) setInfo(ok);
      return true;
    } catch (e) {
      if (e instanceof Error && !("errcode" in e) && !("httpStatus" in e) && e.name !== "ConnectionError") setError(e.message);
      else {
        const f = describeError(e);
        setError(`${f.title}${f.detail ? `. ${f.detail}` : ""}`);
      }
      return false;
    } finally {
      setBusy(false);
    }
  }
  return { busy, error, info, run, setError, setInfo };
}
