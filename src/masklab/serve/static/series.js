// masklab serve: the series panel (uses $, api, setStatus and fromTemplate from app.js).
"use strict";

function sparkline(canvas, values, channel = 0) {
  // One channel of a series as a line; NaN (null) steps leave a gap.
  const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const ys = values.map((row) => row[channel]).filter((v) => v !== null);
  if (!ys.length) return;
  const lo = Math.min(...ys), hi = Math.max(...ys), span = hi - lo || 1;
  ctx.strokeStyle = "#1d2330"; ctx.lineWidth = 1.2; ctx.beginPath();
  let pen = false;
  values.forEach((row, t) => {
    const v = row[channel];
    if (v === null) { pen = false; return; }
    const x = 2 + (t / Math.max(1, values.length - 1)) * (w - 4), y = h - 3 - ((v - lo) / span) * (h - 6);
    if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    pen = true;
  });
  ctx.stroke();
}

function anomalyChart(canvas, body, channel) {
  // The series (one channel, top) over its per-step anomaly scores (bars, bottom), step t at the same x in both;
  // the highest-scoring steps in orange.
  const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height, T = body.length;
  const top = new Set(body.top_steps), split = Math.round(h * 0.55), left = 36, step = (w - left - 4) / T;
  const x = (t) => left + (t + 0.5) * step;
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, w, h);
  ctx.fillStyle = "#667085"; ctx.font = "11px system-ui, sans-serif";
  ctx.fillText(`ch. ${channel}`, 2, 12); ctx.fillText("score", 2, split + 14);
  const most = Math.max(1e-12, ...body.per_step.filter((s) => s !== null));
  body.per_step.forEach((s, t) => {
    if (s === null) return;
    const bar = (s / most) * (h - split - 8), width = Math.max(1, step - 1);
    ctx.fillStyle = top.has(t) ? "#e8590c" : "#2f6fed";
    ctx.fillRect(x(t) - width / 2, h - 4 - bar, width, bar);
    if (top.has(t)) { ctx.fillStyle = "rgba(232, 89, 12, 0.12)"; ctx.fillRect(x(t) - step / 2, 4, step, split - 8); }
  });
  const ys = body.values.map((row) => row[channel]), seen = ys.filter((v) => v !== null);
  if (!seen.length) return;
  const lo = Math.min(...seen), span = Math.max(...seen) - lo || 1, y = (v) => split - 8 - ((v - lo) / span) * (split - 24);
  ctx.strokeStyle = "#1d2330"; ctx.lineWidth = 1.2; ctx.beginPath();
  let pen = false;
  ys.forEach((v, t) => {
    if (v === null) { pen = false; return; }  // a step not observed: a gap
    if (pen) ctx.lineTo(x(t), y(v)); else ctx.moveTo(x(t), y(v));
    pen = true;
  });
  ctx.stroke();
}

function seriesPanel(run) {
  const panel = fromTemplate("tpl-series", run);
  const d = run.details;
  $(panel, ".run-meta").textContent = `${d.channels} channel(s), patches of ${d.patch_len} steps, up to ${d.max_steps} `
    + `steps, trained hiding ${Math.round(100 * d.mask_ratio)}% (${d.mask_kind})`;
  const channel = $(panel, ".channel");
  channel.replaceChildren(...Array.from({ length: d.channels }, (_, c) => new Option(String(c), String(c))));
  $(panel, ".horizon").value = d.horizon;
  let source = null, seed = 0, anomalies = null;

  function form(extra) {
    const body = new FormData();
    if (source.file) { body.append("file", source.file); body.append("index", $(panel, ".series-index").value || "0"); }
    else body.append("example", source.example);
    Object.entries(extra).forEach(([k, v]) => body.append(k, v));
    return body;
  }

  async function post(task, extra) {
    return (await api(`/api/runs/${run.name}/series/${task}`, { method: "POST", body: form(extra) })).json();
  }

  async function reconstruct() {
    const body = await post("reconstruct", { masking: $(panel, ".masking").value, seed: String(seed) });
    $(panel, ".s-recon").src = body.image;
    const mse = body.mse_hidden === null ? "no observed value hidden" : `MSE on hidden values ${body.mse_hidden.toFixed(4)}`;
    $(panel, ".recon-line").textContent = `${Math.round(100 * body.hidden_fraction)}% hidden (${body.masking}, seed ${body.seed}) · ${mse}`;
    return body;
  }

  async function forecast() {
    const body = await post("forecast", { horizon: $(panel, ".horizon").value, channel: channel.value });
    $(panel, ".s-forecast").src = body.image;
    $(panel, ".forecast-line").textContent = `${body.horizon} steps past step ${body.length - 1}, channel ${body.channel}`;
    panel.dataset.forecasts = String(Number(panel.dataset.forecasts || 0) + 1);
  }

  async function scoreSteps() {
    anomalies = await post("anomalies", {});
    anomalyChart($(panel, "canvas.s-anomaly"), anomalies, Number(channel.value));
    $(panel, ".anomaly-line").textContent = `series score ${anomalies.score.toFixed(4)} · highest at steps `
      + anomalies.top_steps.slice(0, 5).join(", ");
  }

  async function all() {
    if (!source) return;
    setStatus(panel, "working…");
    try {
      const body = await reconstruct();
      $(panel, ".picked-line").textContent = `${body.name}: ${body.length} steps` + (source.file ? ` (series ${$(panel, ".series-index").value} of ${body.count} in the file)` : "");
      if (source.file) $(panel, ".series-index").max = String(body.count - 1);
      await forecast();
      await scoreSteps();
      setStatus(panel, "ready");
      panel.dataset.analyses = String(Number(panel.dataset.analyses || 0) + 1);
    } catch (err) { setStatus(panel, err.message, true); }
  }

  async function guarded(work) {
    if (!source) return;
    setStatus(panel, "working…");
    try { await work(); setStatus(panel, "ready"); } catch (err) { setStatus(panel, err.message, true); }
  }

  const examples = $(panel, ".series-examples");
  d.examples.forEach((ex, i) => {
    const canvas = document.createElement("canvas");
    canvas.width = 88; canvas.height = 36; canvas.title = `${ex.name} (${ex.length} steps)`;
    canvas.addEventListener("click", () => {
      source = { example: i };
      $(panel, ".series-index").disabled = true;  // which series of an uploaded file
      examples.querySelectorAll("canvas").forEach((c, j) => c.classList.toggle("picked", j === i));
      all();
    });
    examples.appendChild(canvas);
    api(`/api/runs/${run.name}/series/examples/${i}`).then((r) => r.json()).then((b) => sparkline(canvas, b.values)).catch(() => {});
  });
  $(panel, ".series-file").addEventListener("change", (e) => {
    if (!e.target.files[0]) return;
    source = { file: e.target.files[0], example: -1 };
    examples.querySelectorAll("canvas").forEach((c) => c.classList.remove("picked"));
    $(panel, ".series-index").value = "0";
    $(panel, ".series-index").disabled = false;
    all();
  });
  $(panel, ".series-index").addEventListener("change", () => { if (source && source.file) all(); });
  $(panel, ".redraw").addEventListener("click", () => { seed += 1; guarded(reconstruct); });
  $(panel, ".masking").addEventListener("change", () => guarded(reconstruct));
  $(panel, ".forecast-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(forecast); });
  channel.addEventListener("change", () => guarded(async () => {
    await forecast();
    if (anomalies) anomalyChart($(panel, "canvas.s-anomaly"), anomalies, Number(channel.value));
  }));
  const chart = $(panel, "canvas.s-anomaly");
  chart.addEventListener("mousemove", (event) => {
    if (!anomalies) return;
    const box = chart.getBoundingClientRect(), x = (event.clientX - box.left) * (chart.width / box.width);
    const t = Math.floor((x - 36) / ((chart.width - 40) / anomalies.length));  // as anomalyChart lays steps out
    if (t < 0 || t >= anomalies.length) return;
    const v = anomalies.values[t][Number(channel.value)], s = anomalies.per_step[t];
    chart.title = `step ${t}: value ${v === null ? "missing" : v.toFixed(4)}, score ${s === null ? "none" : s.toFixed(4)}`;
  });
  if (d.examples.length) { examples.querySelector("canvas").click(); }
  else setStatus(panel, "upload a series file to start");
  return panel;
}
