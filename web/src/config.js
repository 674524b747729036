// The stack's settings, which deploy.sh writes to config.json beside the page: never a secret.
const REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;
const POOL_ID = /^[a-z]{2}(-[a-z]+)+-\d{1,2}_[0-9A-Za-z]{1,64}$/;
const CLIENT_ID = /^[\w+]{1,128}$/;
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

export class ConfigError extends Error {}

function checkedUrl(value, name) {
  let url;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${name} is not a URL`);
  }
  // https everywhere; plain http only to this machine (the local emulator)
  if (url.protocol !== "https:" && !(url.protocol === "http:" && LOOPBACK.has(url.hostname))) {
    throw new ConfigError(`${name} must be an https:// address`);
  }
  return url.href.replace(/\/$/, "");
}

export function parseConfig(data) {
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new ConfigError("it is not a JSON object");
  }
  const field = (name, pattern) => {
    const value = data[name];
    if (typeof value !== "string" || !pattern.test(value)) throw new ConfigError(`${name} is missing or malformed`);
    return value;
  };
  const region = field("region", REGION);
  return {
    region,
    userPoolId: field("userPoolId", POOL_ID),
    clientId: field("userPoolClientId", CLIENT_ID),
    usersApiUrl: checkedUrl(data.usersApiUrl, "usersApiUrl"),
    cognitoEndpoint: checkedUrl(data.cognitoEndpoint ?? `https://cognito-idp.${region}.amazonaws.com/`, "cognitoEndpoint"),
  };
}

export async function loadConfig() {
  let response;
  try {
    response = await fetch("config.json", { cache: "no-store" });
  } catch {
    throw new ConfigError("it could not be fetched");
  }
  if (!response.ok) throw new ConfigError(`fetching it answered HTTP ${response.status}`);
  let data;
  try {
    data = await response.json();
  } catch {
    throw new ConfigError("it is not JSON");
  }
  return parseConfig(data);
}
