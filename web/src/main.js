// The page: sign in, the user's devices, and the live view of one of them. Every failure ends in a sentence
// on the page (#problem) and a way on: sign in again, try again, reconnect.
import { ConfigError, loadConfig } from "./config.js";
import { SignInError, UserPool } from "./cognito.js";
import { ApiError, SessionExpired, UsersApi } from "./api.js";
import { LiveConnection, LiveError } from "./live.js";
import { Chart } from "./chart.js";
import * as session from "./session.js";

const $ = (id) => document.getElementById(id);
const MAX_ROWS = 50;
let config = null;
let pool = null;
let api = null;
let live = null;
let chart = null;
let pendingEmail = null;
let retry = null;

function status(text) {
  $("status").textContent = text;
}

function problem(text, again = null) {
  $("problem-text").textContent = text;
  $("problem").hidden = !text;
  retry = again;
  $("problem-retry").hidden = !again;
}

function show(view) {
  $("sign-in").hidden = view !== "sign-in";
  $("devices").hidden = view !== "devices";
  $("live").hidden = view !== "devices" || !live;
  $("sign-out").hidden = view !== "devices";
  $("who").hidden = view !== "devices";
}

// -- failures: one place turns each into a sentence and a next step ---------------------------------------
function failed(error, again) {
  if (error instanceof SessionExpired) {
    signOut(error.message);
    return;
  }
  status("");
  const known = error instanceof ApiError || error instanceof SignInError || error instanceof LiveError;
  problem(known ? error.message : "Something went wrong on this page: try again.", again);
  if (!known) console.error(error);
}

async function guarded(work, again) {
  problem("");
  try {
    await work();
  } catch (error) {
    failed(error, again);
  }
}

// -- signing in ----------------------------------------------------------------------------------------
async function token() {
  let tokens = session.load();
  if (!tokens) throw new SessionExpired();
  if (session.expiring(tokens)) {
    try {
      tokens = await pool.refresh(tokens.refreshToken);
    } catch (error) {
      if (error instanceof SignInError && error.code === "Unreachable") throw error;
      throw new SessionExpired();
    }
    session.save({ ...tokens, email: session.load()?.email });
  }
  return tokens.idToken;
}

function credentialsOf(form) {
  const email = form.email.value.trim();
  const password = form.password.value;
  if (!email || !email.includes("@")) throw new SignInError("Enter your e-mail address.", "Input");
  if (password.length < 12) throw new SignInError("Enter your password (at least 12 characters).", "Input");
  return { email, password };
}

async function signIn(event) {
  event.preventDefault();
  await guarded(async () => {
    const { email, password } = credentialsOf($("sign-in-form"));
    status("Signing in…");
    const tokens = await pool.signIn(email, password);
    session.save({ ...tokens, email });
    $("password").value = "";
  });
  status("");
  if (session.load()) await guarded(enter, enter); // signed in: a failing API is tried again, not the password
}

async function signUp() {
  await guarded(async () => {
    const { email, password } = credentialsOf($("sign-in-form"));
    status("Creating your account…");
    await pool.signUp(email, password);
    pendingEmail = email;
    $("confirm-form").hidden = false;
    $("confirm-code").focus();
    status("Account created: enter the code we e-mailed you.");
  });
}

async function confirmAccount(event) {
  event.preventDefault();
  await guarded(async () => {
    const code = $("confirm-code").value.trim();
    if (!code) throw new SignInError("Enter the code we e-mailed you.", "Input");
    await pool.confirm(pendingEmail || $("email").value.trim(), code);
    $("confirm-form").hidden = true;
    $("confirm-code").value = "";
    status("Account confirmed: sign in with your password.");
    $("password").focus();
  });
}

function signOut(why = "") {
  const tokens = session.load();
  if (!why && tokens?.accessToken) pool.signOut(tokens.accessToken).catch(() => {}); // best effort: gone here anyway
  closeLive();
  session.clear();
  $("device-table").tBodies[0].replaceChildren();
  show("sign-in");
  problem(why);
  status(why ? "" : "Signed out.");
  $("email").focus();
}

// -- devices -------------------------------------------------------------------------------------------
async function enter() {
  const tokens = session.load();
  $("who").textContent = `Signed in as ${tokens?.email || "you"}`;
  show("devices");
  await refreshDevices();
}

function lastSeenText(seen) {
  if (!seen) return "never";
  const when = new Date(seen.at).toLocaleString();
  return seen.connected ? `online since ${when}` : `offline since ${when}`;
}

function button(label, name, action) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.setAttribute("aria-label", `${label} ${name}`);
  b.addEventListener("click", action);
  return b;
}

async function refreshDevices() {
  status("Loading your devices…");
  const { devices } = await api.devices();
  const rows = await Promise.all(
    devices.map(async (device) => {
      const registration = await api.registration(device.thingName).catch(() => null);
      return { ...device, registered: registration ? (registration.registered ? "yes" : "not yet") : "unknown" };
    }),
  );
  const body = $("device-table").tBodies[0];
  body.replaceChildren(
    ...rows.map((device) => {
      const row = body.insertRow();
      row.dataset.thing = device.thingName;
      row.insertCell().textContent = device.thingName;
      row.insertCell().textContent = device.registered;
      const seen = row.insertCell();
      seen.textContent = lastSeenText(device.lastSeen);
      if (device.lastSeen?.connected) seen.className = "online";
      const actions = row.insertCell();
      actions.append(
        button("Watch", device.thingName, () => guarded(() => watch(device.thingName), () => watch(device.thingName))),
        button("Remove", device.thingName, () => guarded(() => unbind(device.thingName))),
      );
      return row;
    }),
  );
  $("no-devices").hidden = rows.length > 0;
  status(`${rows.length} device${rows.length === 1 ? "" : "s"}.`);
}

async function bind(event) {
  event.preventDefault();
  await guarded(async () => {
    const thing = $("bind-thing").value.trim();
    const code = $("bind-code").value.trim();
    if (!/^[A-Za-z0-9:_-]{1,128}$/.test(thing)) throw new ApiError("Enter the device name printed on it.", 400);
    if (!code) throw new ApiError("Enter the binding code printed on the device.", 400);
    status(`Adding ${thing}…`);
    await api.bind(thing, code);
    $("bind-code").value = "";
    $("bind-thing").value = "";
    await refreshDevices();
    status(`${thing} is yours now.`);
  });
}

async function unbind(thing) {
  if (live?.thing === thing) closeLive();
  await api.unbind(thing);
  await refreshDevices();
  status(`${thing} was removed from your devices.`);
}

// -- the live view -------------------------------------------------------------------------------------
function addMessage(time, text) {
  const body = $("messages").tBodies[0];
  const row = body.insertRow(0);
  row.insertCell().textContent = time;
  const cell = row.insertCell();
  const code = document.createElement("code");
  code.textContent = text;
  cell.append(code);
  while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
  try {
    chart.add(JSON.parse(text));
  } catch {
    /* not JSON: listed, not charted */
  }
}

function closeLive() {
  if (live) live.close();
  live = null;
  $("live").hidden = true;
}

async function watch(thing) {
  closeLive();
  chart.reset();
  $("messages").tBodies[0].replaceChildren();
  $("live-title").textContent = `Live view: ${thing}`;
  $("live-reconnect").hidden = true;
  status(`Reading what ${thing} sent lately…`);
  const { messages } = await api.telemetry(thing);
  for (const message of messages) {
    const text = "payload" in message ? JSON.stringify(message.payload) : "(not JSON)";
    addMessage(new Date(message.timestamp).toLocaleTimeString(), text);
  }
  status(`Connecting to ${thing}…`);
  const credentials = await api.credentials([thing]);
  const connection = new LiveConnection(credentials, {
    message: (_topic, text) => addMessage(new Date().toLocaleTimeString(), text),
    state: (sentence, connected) => {
      $("live-state").textContent = sentence;
      $("live-reconnect").hidden = connected;
    },
  });
  live = connection;
  $("live").hidden = false;
  try {
    await connection.open(thing);
  } catch (error) {
    $("live-state").textContent = error.message;
    $("live-reconnect").hidden = false;
    throw error;
  }
  status("");
  $("live-reconnect").onclick = () => guarded(() => watch(thing), () => watch(thing));
}

async function sendCommand(event) {
  event.preventDefault();
  await guarded(async () => {
    const name = $("command-name").value.trim();
    const text = $("command-body").value;
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw new ApiError("A command name is letters, digits, _ or -.", 400);
    if (!text.trim()) throw new ApiError("Write the command to send.", 400);
    if (!live) throw new ApiError("Watch a device first, then send it a command.", 400);
    await live.send(name, text);
    status(`Command sent to ${live.thing}.`);
  });
}

// -- start -----------------------------------------------------------------------------------------------
async function start() {
  problem("");
  try {
    config = await loadConfig();
  } catch (error) {
    const why = error instanceof ConfigError ? error.message : "it could not be read";
    problem(`This site's settings (config.json) are not usable: ${why}. Ask its operator to deploy it again.`, start);
    return;
  }
  pool = new UserPool(config);
  api = new UsersApi(config.usersApiUrl, token);
  if (session.load()) {
    await guarded(enter, start);
  } else {
    show("sign-in");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  chart = new Chart($("chart"), $("chart-caption"));
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-up-button").addEventListener("click", signUp);
  $("confirm-form").addEventListener("submit", confirmAccount);
  $("sign-out").addEventListener("click", () => signOut());
  $("bind-form").addEventListener("submit", bind);
  $("command-form").addEventListener("submit", sendCommand);
  $("problem-retry").addEventListener("click", () => retry && guarded(retry, retry));
  start();
});
