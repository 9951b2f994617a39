// OPAQUE (RFC 9807) on WSPR's sign-in, sign-up, password and reset pages
// (homeserver/oauth/opaque.py). The password inputs have no name, so the browser never posts
// them: this script runs the OPAQUE client (@serenity-kit/opaque, vendored) and posts only
// protocol messages (the final one in the form's "finish" or "record" field).
import * as opaque from "./opaque-1.1.0.js";

async function post(path, form, body) {
  const res = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ...body, csrf: form.elements.csrf.value }),
  });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(json.error || "The server refused the request.");
  return json;
}

function showError(form, text) {
  let box = form.querySelector(".opaque-error");
  if (!box) {
    box = document.createElement("p");
    box.className = "error opaque-error";
    box.setAttribute("role", "alert");
    form.prepend(box);
  }
  box.textContent = text;
}

const passwordOf = (form, which = 0) => form.querySelectorAll("input[data-opaque-password]")[which]?.value || "";

async function register(form, password, purpose, extra) {
  const keyStretching = JSON.parse(form.dataset.ksf);
  const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password });
  const { response } = await post("/_wspr/opaque/register/start", form, { purpose, request: registrationRequest, ...extra });
  const { registrationRecord } = opaque.client.finishRegistration({
    clientRegistrationState,
    registrationResponse: response,
    password,
    keyStretching,
  });
  return registrationRecord;
}

async function login(form) {
  const keyStretching = JSON.parse(form.dataset.ksf);
  const username = form.elements.username.value.trim();
  const password = passwordOf(form);
  const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password });
  const start = await post("/_wspr/opaque/login/start", form, { username, request: startLoginRequest });
  if (start.legacy) {
    // An account from before OPAQUE: the password goes to the server this one time, to be
    // checked against its old hash, and the account is registered for OPAQUE at once.
    const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password });
    const { response } = await post("/_wspr/opaque/login/legacy", form, { username, password, request: registrationRequest });
    const { registrationRecord } = opaque.client.finishRegistration({
      clientRegistrationState,
      registrationResponse: response,
      password,
      keyStretching,
    });
    form.elements.record.value = registrationRecord;
    return;
  }
  const finished = opaque.client.finishLogin({ clientLoginState, loginResponse: start.response, password, keyStretching });
  // A wrong password: the server is told (an empty message) so that it counts the attempt.
  form.elements.finish.value = finished ? finished.finishLoginRequest : "";
}

await opaque.ready;
for (const form of document.querySelectorAll("form[data-opaque]")) {
  let busy = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    busy = true;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      if (form.dataset.opaque === "login") {
        await login(form);
      } else {
        const password = passwordOf(form, 0);
        if (form.querySelectorAll("input[data-opaque-password]").length > 1 && password !== passwordOf(form, 1)) {
          throw new Error("The passwords do not match.");
        }
        const extra = {};
        if (form.elements.username) extra.username = form.elements.username.value.trim();
        if (form.elements.token) extra.token = form.elements.token.value;
        if (form.elements.reset_token) extra.reset_token = form.elements.reset_token.value;
        form.elements.record.value = await register(form, password, form.dataset.purpose, extra);
      }
      for (const input of form.querySelectorAll("input[data-opaque-password]")) input.value = "";
      form.submit();
    } catch (e) {
      showError(form, e.message || String(e));
      button.disabled = false;
      busy = false;
    }
  });
}
