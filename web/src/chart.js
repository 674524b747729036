// A small line chart of one numeric field of the device's messages, drawn as an SVG polyline.
const SVG = "http://www.w3.org/2000/svg";
const MAX_POINTS = 60;

export function numericField(payload) {
  if (typeof payload !== "object" || payload === null) return null;
  const preferred = Object.keys(payload).filter((k) => k !== "timestamp" && typeof payload[k] === "number");
  return preferred.length ? preferred.find((k) => k !== "seq") || preferred[0] : null;
}

export class Chart {
  constructor(svg, caption) {
    this.svg = svg;
    this.caption = caption;
    this.reset();
  }

  reset() {
    this.field = null;
    this.values = [];
    this.draw();
  }

  add(payload) {
    if (this.field === null) this.field = numericField(payload);
    if (this.field === null || typeof payload?.[this.field] !== "number") return;
    this.values.push(payload[this.field]);
    this.values = this.values.slice(-MAX_POINTS);
    this.draw();
  }

  draw() {
    this.svg.replaceChildren();
    const values = this.values;
    if (values.length < 2) {
      this.caption.textContent = this.field ? `${this.field}: waiting for more messages.` : "No numbers yet.";
      return;
    }
    const low = Math.min(...values);
    const high = Math.max(...values);
    const span = high - low || 1;
    const line = document.createElementNS(SVG, "polyline");
    const points = values.map((v, i) => `${(i / (values.length - 1)) * 320},${115 - ((v - low) / span) * 110}`);
    line.setAttribute("points", points.join(" "));
    this.svg.append(line);
    this.caption.textContent = `${this.field}: last ${values.length} values, from ${low} to ${high}; latest ${values.at(-1)}.`;
  }
}
