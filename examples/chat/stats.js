// The chat's statistics page: polls the Prometheus exposition at /metrics once a second and
// draws open connections and message rates (the last minute, growing to five) on two canvases. Reads the
// text format directly (a few lines of parsing); no library, nothing loaded from elsewhere.
"use strict";

const WINDOW = 300; // samples kept (one per second)
const samples = []; // { t, conns, inTotal, outTotal, p99 }

/// Parse the exposition into { name: [{ labels, value }] } for the metrics we use.
function parse(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)$/);
    if (!m) continue;
    const labels = {};
    for (const kv of (m[3] || "").split(",")) {
      const p = kv.match(/^\s*([a-zA-Z_][a-zA-Z0-9_]*)="(.*)"\s*$/);
      if (p) labels[p[1]] = p[2];
    }
    (out[m[1]] ||= []).push({ labels, value: Number(m[4]) });
  }
  return out;
}

const sum = (series) => (series || []).reduce((a, s) => a + s.value, 0);

/// The 99th percentile of a cumulative histogram's buckets, in seconds (upper bound).
function p99(buckets) {
  if (!buckets || !buckets.length) return NaN;
  const total = buckets.find((b) => b.labels.le === "+Inf");
  if (!total || total.value === 0) return NaN;
  const want = total.value * 0.99;
  for (const b of buckets) if (b.value >= want) return Number(b.labels.le);
  return Infinity;
}

function draw(canvas, lines) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 30;
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#f8fafc";
  ctx.fillRect(0, 0, w, h);
  let max = 1;
  for (const l of lines) for (const v of l.values) if (v > max) max = v;
  ctx.strokeStyle = "#cbd5e1";
  ctx.fillStyle = "#475569";
  ctx.font = "12px sans-serif";
  for (let i = 0; i <= 4; i++) {
    const y = pad / 2 + ((h - pad) * i) / 4;
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(w - 4, y); ctx.stroke();
    const v = (max * (4 - i)) / 4;
    ctx.fillText(max < 10 ? v.toFixed(1) : String(Math.round(v)), 2, y + 4);
  }
  // The x axis spans the last minute until there is more, then the last five minutes.
  const span = Math.max(60, ...lines.map((l) => l.values.length));
  let points = 0;
  for (const l of lines) {
    ctx.strokeStyle = l.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    l.values.forEach((v, i) => {
      const x = pad + ((w - pad - 4) * (i + span - l.values.length)) / (span - 1);
      const y = pad / 2 + (h - pad) * (1 - v / max);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
    points += l.values.length;
  }
  // For tests and curious readers: how much is drawn, and the newest values.
  canvas.dataset.points = String(points);
  canvas.dataset.last = lines.map((l) => l.values[l.values.length - 1] ?? "").join(",");
}

function render() {
  const rates = samples.slice(1).map((s, i) => ({
    in: Math.max(0, (s.inTotal - samples[i].inTotal) / ((s.t - samples[i].t) / 1000)),
    out: Math.max(0, (s.outTotal - samples[i].outTotal) / ((s.t - samples[i].t) / 1000)),
  }));
  const last = samples[samples.length - 1];
  document.getElementById("v-conns").textContent = String(last.conns);
  const r = rates[rates.length - 1];
  document.getElementById("v-in").textContent = r ? r.in.toFixed(1) : "–";
  document.getElementById("v-out").textContent = r ? r.out.toFixed(1) : "–";
  document.getElementById("v-p99").textContent =
    Number.isFinite(last.p99) ? (last.p99 * 1000).toFixed(2) : "–";
  draw(document.getElementById("plot-conns"), [
    { color: "#4f46e5", values: samples.map((s) => s.conns) },
  ]);
  draw(document.getElementById("plot-rate"), [
    { color: "#0891b2", values: rates.map((x) => x.in) },
    { color: "#db2777", values: rates.map((x) => x.out) },
  ]);
}

async function tick() {
  try {
    const res = await fetch("/metrics", { cache: "no-store" });
    const m = parse(await res.text());
    samples.push({
      t: Date.now(),
      conns: sum(m.volley_connections_open),
      inTotal: sum(m.volley_messages_received_total),
      outTotal: sum(m.volley_messages_sent_total),
      p99: p99(m.volley_handler_duration_seconds_bucket),
    });
    if (samples.length > WINDOW) samples.shift();
    render();
    document.getElementById("status").textContent = "";
  } catch (e) {
    document.getElementById("status").textContent = "(server unreachable, retrying)";
  }
}

tick();
setInterval(tick, 1000);
