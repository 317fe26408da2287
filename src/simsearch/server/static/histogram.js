// The score histogram: 20 bins over the scores of every result, with a score axis and a
// count axis, drawn as SVG in the page's theme colours (CSS classes, no inline colours).
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600, HEIGHT = 170;
const LEFT = 40, RIGHT = 10, TOP = 8, BOTTOM = 36;
const BINS = 20;

function node(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function decimals(span) {
  if (span >= 1) return 2;
  return Math.min(4, Math.max(2, Math.ceil(-Math.log10(span)) + 1));
}

/** Draw the histogram of `scores` into `svg`; an empty list clears it. */
export function drawHistogram(svg, scores) {
  svg.replaceChildren();
  if (!scores.length) return;
  let lo = Math.min(...scores), hi = Math.max(...scores);
  if (hi - lo < 1e-9) { lo -= 0.005; hi += 0.005; }  // one score: a narrow bin around it
  const counts = new Array(BINS).fill(0);
  for (const s of scores) counts[Math.min(BINS - 1, Math.floor(((s - lo) / (hi - lo)) * BINS))] += 1;
  const top = Math.max(...counts);
  const plotW = WIDTH - LEFT - RIGHT, plotH = HEIGHT - TOP - BOTTOM;
  const x = (v) => LEFT + ((v - lo) / (hi - lo)) * plotW;
  const y = (c) => TOP + plotH - (c / top) * plotH;
  const binW = plotW / BINS;
  const digits = decimals(hi - lo);

  counts.forEach((c, i) => {
    const from = lo + ((hi - lo) * i) / BINS, to = lo + ((hi - lo) * (i + 1)) / BINS;
    const rect = node("rect", {
      class: "bar-rect", x: LEFT + i * binW + 1, y: y(c), width: Math.max(binW - 2, 1),
      height: TOP + plotH - y(c),
    });
    rect.appendChild(node("title", {}, `${c} hit(s) scoring ${from.toFixed(digits)} to ${to.toFixed(digits)}`));
    svg.appendChild(rect);
  });

  const xAxis = node("g", { class: "axis x-axis" });
  xAxis.appendChild(node("line", { x1: LEFT, y1: TOP + plotH, x2: LEFT + plotW, y2: TOP + plotH }));
  for (let t = 0; t <= 4; t += 1) {
    const v = lo + ((hi - lo) * t) / 4;
    xAxis.appendChild(node("line", { x1: x(v), y1: TOP + plotH, x2: x(v), y2: TOP + plotH + 4 }));
    xAxis.appendChild(node("text", { class: "tick", x: x(v), y: TOP + plotH + 16, "text-anchor": "middle" }, v.toFixed(digits)));
  }
  xAxis.appendChild(node("text", { class: "label", x: LEFT + plotW / 2, y: HEIGHT - 2, "text-anchor": "middle" }, "score"));
  svg.appendChild(xAxis);

  const yAxis = node("g", { class: "axis y-axis" });
  yAxis.appendChild(node("line", { x1: LEFT, y1: TOP, x2: LEFT, y2: TOP + plotH }));
  const ticks = [...new Set([0, Math.round(top / 2), top])];
  for (const c of ticks) {
    yAxis.appendChild(node("line", { x1: LEFT - 4, y1: y(c), x2: LEFT, y2: y(c) }));
    yAxis.appendChild(node("text", { class: "tick", x: LEFT - 7, y: y(c) + 4, "text-anchor": "end" }, String(c)));
  }
  yAxis.appendChild(node("text", {
    class: "label", x: 11, y: TOP + plotH / 2, "text-anchor": "middle",
    transform: `rotate(-90 11 ${TOP + plotH / 2})`,
  }, "hits"));
  svg.appendChild(yAxis);
}
