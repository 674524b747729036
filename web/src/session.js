// The signed-in user's tokens: in sessionStorage (gone with the tab), never in localStorage.
const KEY = "jitr-session";
const EARLY_SECONDS = 60; // renew a token this long before it expires

export function claims(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch {
    return {};
  }
}

export function load() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(KEY) || "null");
    return saved && typeof saved.idToken === "string" ? saved : null;
  } catch {
    return null;
  }
}

export function save(tokens) {
  sessionStorage.setItem(KEY, JSON.stringify(tokens));
}

export function clear() {
  sessionStorage.removeItem(KEY);
}

export function expiring(tokens, now = Date.now()) {
  const exp = claims(tokens.idToken).exp;
  return typeof exp !== "number" || exp * 1000 - EARLY_SECONDS * 1000 <= now;
}
