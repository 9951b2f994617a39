// WebAuthn ceremonies for WSPR's sign-in and account pages (homeserver/oauth/webauthn.py).
// A form with data-webauthn="create" (add a passkey) or "get" (sign in with one) carries the
// server's options as JSON in data-options; submitting it runs the ceremony and posts the
// credential as JSON in the hidden "credential" field. No other script, nothing external.
"use strict";

const toBytes = (b64url) => {
  const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((b64url.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
};
const toB64url = (buffer) =>
  btoa(String.fromCharCode(...new Uint8Array(buffer))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

function creationOptions(o) {
  return {
    ...o,
    challenge: toBytes(o.challenge),
    user: { ...o.user, id: toBytes(o.user.id) },
    excludeCredentials: (o.excludeCredentials || []).map((c) => ({ ...c, id: toBytes(c.id) })),
  };
}

function requestOptions(o) {
  return { ...o, challenge: toBytes(o.challenge), allowCredentials: (o.allowCredentials || []).map((c) => ({ ...c, id: toBytes(c.id) })) };
}

function credentialJson(cred) {
  const r = cred.response;
  const response = { clientDataJSON: toB64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toB64url(r.attestationObject);
    response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
  } else {
    response.authenticatorData = toB64url(r.authenticatorData);
    response.signature = toB64url(r.signature);
    if (r.userHandle) response.userHandle = toB64url(r.userHandle);
  }
  return JSON.stringify({
    id: cred.id,
    rawId: toB64url(cred.rawId),
    type: cred.type,
    response,
    authenticatorAttachment: cred.authenticatorAttachment || undefined,
    clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
  });
}

function showError(form, text) {
  let box = form.querySelector(".webauthn-error");
  if (!box) {
    box = document.createElement("p");
    box.className = "error webauthn-error";
    box.setAttribute("role", "alert");
    form.prepend(box);
  }
  box.textContent = text;
}

for (const form of document.querySelectorAll("form[data-webauthn]")) {
  if (!window.PublicKeyCredential || !navigator.credentials) {
    form.querySelector("button").disabled = true;
    form.querySelector(".webauthn-unsupported").hidden = false;
    continue;
  }
  let busy = false;
  form.addEventListener("submit", async (event) => {
    if (form.elements.credential.value) return; // the ceremony is done: let the form go
    event.preventDefault();
    if (busy) return;
    busy = true;
    try {
      const options = JSON.parse(form.dataset.options);
      const cred =
        form.dataset.webauthn === "create"
          ? await navigator.credentials.create({ publicKey: creationOptions(options) })
          : await navigator.credentials.get({ publicKey: requestOptions(options) });
      if (!cred) throw new Error("no credential");
      const label = form.elements.name;
      if (label && label.type === "hidden" && !label.value) label.value = "Passkey";
      form.elements.credential.value = credentialJson(cred);
      form.submit();
    } catch (e) {
      showError(form, e && e.name === "NotAllowedError" ? "The passkey request was cancelled or timed out." : "Your browser could not use a passkey here.");
    } finally {
      busy = false;
    }
  });
}
