// The live view: MQTT over WebSocket to AWS IoT, the URL signed with SigV4 (aws4fetch) from the temporary
// credentials the users API hands out, MQTT spoken by mqtt.js. AWS IoT decides every subscribe and publish
// by those credentials' policy; what it refuses is said in a sentence.
import mqtt from "../vendor/mqtt.esm.js";
import { AwsV4Signer } from "../vendor/aws4fetch.js";

const CONNECT_TIMEOUT_MS = 10000;
const REFUSED = 128;

export class LiveError extends Error {}

export async function signedUrl(credentials) {
  const signer = new AwsV4Signer({
    url: `wss://${credentials.iotEndpoint}/mqtt`,
    method: "GET",
    accessKeyId: credentials.accessKeyId,
    secretAccessKey: credentials.secretAccessKey,
    sessionToken: credentials.sessionToken, // appended after signing, as AWS IoT requires
    service: "iotdevicegateway",
    region: credentials.region,
    signQuery: true,
  });
  const signed = await signer.sign();
  return signed.url.toString();
}

export class LiveConnection {
  // handlers: { message(topic, text), state(sentence, connected) }
  constructor(credentials, handlers) {
    this.credentials = credentials;
    this.handlers = handlers;
    this.client = null;
  }

  async open(thing) {
    const credentials = this.credentials;
    const url = await signedUrl(credentials);
    const clientId = `${credentials.clientIdPrefix}web-${crypto.randomUUID().slice(0, 8)}`;
    const topic = `${credentials.topicRoot}/${thing}/telemetry`;
    this.thing = thing;
    await new Promise((resolve, reject) => {
      const client = mqtt.connect(url, {
        clientId,
        protocolVersion: 4,
        clean: true,
        keepalive: 30,
        reconnectPeriod: 0, // a signed URL is for one connect: Reconnect signs a new one
        connectTimeout: CONNECT_TIMEOUT_MS,
      });
      this.client = client;
      let opened = false;
      client.on("connect", () => {
        opened = true;
        client.subscribe(topic, { qos: 1 }, (error, granted) => {
          if (error || !granted || granted.some((g) => g.qos === REFUSED)) {
            reject(new LiveError(`AWS IoT refused to let you watch ${thing}: it is not among your credentials' devices.`));
            client.end(true);
            return;
          }
          this.handlers.state(`Live: watching ${thing}.`, true);
          resolve();
        });
      });
      client.on("message", (received, payload) => this.handlers.message(received, new TextDecoder().decode(payload)));
      client.on("error", (error) => {
        if (!opened) {
          const refused = error && error.code === 5;
          reject(new LiveError(refused
            ? "AWS IoT refused the live connection: your credentials do not allow it. Reconnect to get new ones."
            : "The live connection could not be opened (refused, or the credentials expired): Reconnect to try again."));
        }
      });
      client.on("close", () => {
        if (!opened) {
          reject(new LiveError("The live connection could not be opened (refused, or the credentials expired): Reconnect to try again."));
        } else if (this.client === client) {
          this.handlers.state("The live connection closed: Reconnect to see new messages.", false);
        }
      });
    });
  }

  send(name, text) {
    if (!this.client || !this.client.connected) {
      throw new LiveError("The live connection is closed: Reconnect first, then send the command again.");
    }
    const topic = `${this.credentials.topicRoot}/${this.thing}/commands/${name}`;
    return new Promise((resolve, reject) => {
      this.client.publish(topic, text, { qos: 1 }, (error) => {
        if (error) reject(new LiveError("The command was not delivered: AWS IoT closed the connection. Reconnect, then try again."));
        else resolve();
      });
    });
  }

  close() {
    const client = this.client;
    this.client = null;
    if (client) client.end(true);
  }
}
