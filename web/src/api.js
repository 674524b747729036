// The stack's users API: every call carries the user's ID token; its refusals come back as sentences.
const TIMEOUT_MS = 15000;

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export class SessionExpired extends ApiError {
  constructor() {
    super("Your session has expired: sign in again.", 401);
  }
}

export class UsersApi {
  constructor(url, token) {
    this.url = url;
    this.token = token; // async () => the current ID token (renewed when due)
  }

  async request(method, path, body) {
    const headers = { authorization: await this.token() };
    if (body !== undefined) headers["content-type"] = "application/json";
    let response;
    try {
      response = await fetch(this.url + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch {
      throw new ApiError("The devices service cannot be reached: check your connection, then try again.", 0);
    }
    if (response.status === 401) throw new SessionExpired();
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const said = typeof answer.message === "string" && response.status < 500 ? answer.message : null;
      throw new ApiError(said || `The devices service failed (HTTP ${response.status}): try again later.`, response.status);
    }
    return answer;
  }

  devices() {
    return this.request("GET", "/bindings");
  }

  bind(thingName, code) {
    return this.request("POST", "/bindings", { thingName, code });
  }

  unbind(thing) {
    return this.request("DELETE", `/bindings/${encodeURIComponent(thing)}`);
  }

  registration(thing) {
    return this.request("GET", `/devices/${encodeURIComponent(thing)}/registration`);
  }

  telemetry(thing, limit = 20) {
    return this.request("GET", `/devices/${encodeURIComponent(thing)}/telemetry?limit=${limit}`);
  }

  credentials(things) {
    return this.request("POST", "/credentials", { things });
  }
}
