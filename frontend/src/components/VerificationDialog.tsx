import { useEffect, useReducer, useState } from "react";
import type { MatrixClient } from "matrix-js-sdk";
import { VerificationPhase, VerificationRequestEvent, VerifierEvent, type ShowSasCallbacks, type VerificationRequest } from "matrix-js-sdk/lib/crypto-api/index.js";
import { Dialog } from "./Dialog";

/** Emoji (SAS) verification of another device or user, for both the side that asked and the side asked. */
export function VerificationDialog({ client, request, onClose }: { client: MatrixClient; request: VerificationRequest; onClose: () => void }) {
  const [, bump] = useReducer((x: number) => x + 1, 0);
  const [sasShown, setSas] = useState<ShowSasCallbacks | null>(null);
  const [confirmed, setConfirmed] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    request.on(VerificationRequestEvent.Change, bump);
    return () => void request.off(VerificationRequestEvent.Change, bump);
  }, [request]);

  // once a verifier exists (either side started SAS), listen for the emoji and run it
  const verifier = request.verifier;
  useEffect(() => {
    if (!verifier) return;
    const onShow = (s: ShowSasCallbacks) => setSas(s);
    verifier.on(VerifierEvent.ShowSas, onShow);
    verifier.verify().catch((e: unknown) => setError(e instanceof Error ? e.message : String(e)));
    return () => void verifier.off(VerifierEvent.ShowSas, onShow);
  }, [verifier]);
  // the emoji may have been ready before we listened
  const sas = sasShown ?? verifier?.getShowSasCallbacks() ?? null;

  // the side that asked starts emoji verification as soon as the other side is ready
  useEffect(() => {
    if (request.phase === VerificationPhase.Ready && request.initiatedByMe && !request.verifier) {
      request.startVerification("m.sas.v1").catch((e: unknown) => setError(e instanceof Error ? e.message : String(e)));
    }
  }, [request, request.phase]);

  const who = request.isSelfVerification ? "your other device" : (client.getUser(request.otherUserId)?.displayName ?? request.otherUserId);
  const close = () => {
    if (request.phase !== VerificationPhase.Done && request.phase !== VerificationPhase.Cancelled) request.cancel().catch(() => {});
    onClose();
  };

  let body: React.ReactNode;
  switch (request.phase) {
    case VerificationPhase.Unsent:
    case VerificationPhase.Requested:
      body = request.initiatedByMe ? (
        <p>Waiting for {who} to accept… Open the app there and accept the request.</p>
      ) : (
        <>
          <p>{request.isSelfVerification ? "Another of your devices wants to verify this one." : `${who} wants to verify you.`}</p>
          <div className="row gap end">
            <button className="btn" onClick={close}>Decline</button>
            <button className="btn btn-primary" data-testid="verification-accept" onClick={() => request.accept().catch((e) => setError(String(e)))}>Accept</button>
          </div>
        </>
      );
      break;
    case VerificationPhase.Ready:
      body = request.initiatedByMe ? (
        <p>Starting…</p>
      ) : (
        <>
          <p>Compare emoji with {who} to make sure nobody is listening in.</p>
          <div className="row end">
            <button className="btn btn-primary" onClick={() => request.startVerification("m.sas.v1").catch((e) => setError(String(e)))}>Start</button>
          </div>
        </>
      );
      break;
    case VerificationPhase.Started:
      body = sas?.sas.emoji ? (
        <>
          <p>Confirm that these emoji appear on {who}, in the same order:</p>
          <div className="sas-emoji" data-testid="sas-emoji">
            {sas.sas.emoji.map(([emoji, name], i) => (
              <div key={i} className="sas-cell">
                <span className="sas-glyph">{emoji}</span>
                <span className="small muted">{name}</span>
              </div>
            ))}
          </div>
          {confirmed ? (
            <p className="muted">Waiting for {who} to confirm…</p>
          ) : (
            <div className="row gap end">
              <button className="btn btn-danger-ghost" onClick={() => sas.mismatch()}>They don't match</button>
              <button className="btn btn-primary" data-testid="sas-match" onClick={() => { setConfirmed(true); sas.confirm().catch((e) => setError(String(e))); }}>They match</button>
            </div>
          )}
        </>
      ) : (
        <p>Exchanging keys…</p>
      );
      break;
    case VerificationPhase.Done:
      body = (
        <>
          <p className="verified-big">✅ Verified</p>
          <p className="muted">{request.isSelfVerification ? "This device can now read your encrypted messages and is trusted by your other devices." : `Messages with ${who} are now verified.`}</p>
          <div className="row end"><button className="btn btn-primary" onClick={onClose}>Done</button></div>
        </>
      );
      break;
    case VerificationPhase.Cancelled:
      body = (
        <>
          <p>Verification was cancelled{request.cancellationCode ? ` (${request.cancellationCode})` : ""}.</p>
          <div className="row end"><button className="btn" onClick={onClose}>Close</button></div>
        </>
      );
      break;
  }
  return (
    <Dialog title="Verify" onClose={close} testId="verification-dialog">
      {body}
      {error && <div className="alert alert-error">{error}</div>}
    </Dialog>
  );
}
