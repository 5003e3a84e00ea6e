// masklab serve: one panel per loaded run. Plain JS, no build step, no network beyond this server.
"use strict";

const $ = (root, sel) => root.querySelector(sel);

async function api(path, options = {}) {
  // fetch + the server's JSON errors ({error, field}) turned into one readable message.
  const response = await fetch(path, options);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      message = body.field ? `${body.field}: ${body.error}` : body.error;
    } catch (_) { /* not JSON: keep the status line */ }
    throw new Error(message);
  }
  return response;
}

function setStatus(panel, text, isError = false) {
  const line = $(panel, ".status");
  line.textContent = text;
  line.classList.toggle("error", isError);
}

function fromTemplate(id, run) {
  const panel = document.getElementById(id).content.firstElementChild.cloneNode(true);
  $(panel, ".run-name").textContent = run.name;
  panel.id = `run-${run.name}`;
  return panel;
}

// ------------------------------------------------------------------------------------------------ MAE
function maePanel(run) {
  const panel = fromTemplate("tpl-mae", run);
  const d = run.details;
  const [H, W] = d.image_size, [gh, gw] = d.grid, P = d.patch_size;
  const scale = Math.max(1, Math.floor(300 / Math.max(H, W)));
  $(panel, ".run-meta").textContent = `${H}×${W} px, ${gh}×${gw} patches of ${P}, trained at ratio ${d.mask_ratio}`;
  const canvas = $(panel, "canvas.paint");
  canvas.width = W * scale; canvas.height = H * scale;
  const ctx = canvas.getContext("2d");
  const masked = new Uint8Array(gh * gw);
  const picture = new Image();
  let source = null, rolloutWeights = null, busy = false, again = false;

  function draw() {
    ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = "#ddd"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (picture.complete && picture.naturalWidth) ctx.drawImage(picture, 0, 0, canvas.width, canvas.height);
    const cell = P * scale;
    const rollout = $(panel, ".show-rollout").checked && rolloutWeights;
    masked.forEach((m, i) => {
      if (!m) return;
      // hidden: the picture shows through a little (more when the rollout is drawn over it)
      ctx.fillStyle = `rgba(96, 104, 122, ${rollout ? 0.55 : 0.8})`;
      ctx.fillRect((i % gw) * cell, Math.floor(i / gw) * cell, cell, cell);
    });
    if (rollout) {  // the [CLS] rollout was computed on the whole image, so it covers every patch
      rolloutWeights.forEach((w, i) => {
        ctx.fillStyle = `rgba(232, 89, 12, ${0.7 * w})`;
        ctx.fillRect((i % gw) * cell, Math.floor(i / gw) * cell, cell, cell);
      });
    }
    ctx.strokeStyle = "rgba(47, 111, 237, 0.35)"; ctx.lineWidth = 1;
    for (let c = 0; c <= gw; c++) { ctx.beginPath(); ctx.moveTo(c * cell + .5, 0); ctx.lineTo(c * cell + .5, canvas.height); ctx.stroke(); }
    for (let r = 0; r <= gh; r++) { ctx.beginPath(); ctx.moveTo(0, r * cell + .5); ctx.lineTo(canvas.width, r * cell + .5); ctx.stroke(); }
  }
  picture.onload = draw;

  function sourceForm() {
    const form = new FormData();
    if (source.file) form.append("image", source.file); else form.append("example", source.example);
    return form;
  }

  async function pick(newSource) {
    source = newSource;
    panel.querySelectorAll(".examples img").forEach((img, i) => img.classList.toggle("picked", i === source.example));
    setStatus(panel, "reading the image…");
    try {
      const body = await (await api(`/api/runs/${run.name}/rollout`, { method: "POST", body: sourceForm() })).json();
      rolloutWeights = body.weights;
      picture.src = body.image;  // the image as the model reads it (resized, its channels)
      if (!masked.some((m) => m)) await drawMask("random"); else await reconstruct();
    } catch (err) { setStatus(panel, err.message, true); }
  }

  async function reconstruct() {
    if (!source) return;
    if (busy) { again = true; return; }
    busy = true;
    const form = sourceForm();
    form.append("masking", "paint");
    form.append("masked", Array.from(masked).join(""));
    await send(form);
    busy = false;
    if (again) { again = false; reconstruct(); }
  }

  async function send(form) {
    // One reconstruction request; its answer fills the three views (and, for random / block, the mask).
    setStatus(panel, "reconstructing…");
    try {
      const body = await (await api(`/api/runs/${run.name}/reconstruct`, { method: "POST", body: form })).json();
      Array.from(body.masked).forEach((c, i) => { masked[i] = c === "1" ? 1 : 0; });
      draw();
      $(panel, ".v-masked").src = body.masked_input;
      $(panel, ".v-recon").src = body.reconstruction;
      $(panel, ".v-pasted").src = body.pasted;
      $(panel, ".result-line").textContent =
        `${Math.round(100 * body.hidden_fraction)}% of patches hidden · PSNR on hidden pixels ${body.psnr_hidden.toFixed(2)} dB`;
      setStatus(panel, "ready");
      panel.dataset.reconstructions = String(Number(panel.dataset.reconstructions || 0) + 1);
    } catch (err) { setStatus(panel, err.message, true); }
  }

  async function drawMask(masking) {
    const form = sourceForm();
    form.append("masking", masking);
    form.append("ratio", $(panel, ".ratio").value);
    form.append("seed", String(Math.floor(Math.random() * 1e9)));
    await send(form);
  }

  // Painting: a drag hides (or with "erase" / shift shows) every patch the pointer crosses.
  let painting = null;
  function patchAt(event) {
    const box = canvas.getBoundingClientRect();
    const x = (event.clientX - box.left) * (canvas.width / box.width), y = (event.clientY - box.top) * (canvas.height / box.height);
    const c = Math.floor(x / (P * scale)), r = Math.floor(y / (P * scale));
    return r >= 0 && r < gh && c >= 0 && c < gw ? r * gw + c : -1;
  }
  function paintAt(event) {
    const i = patchAt(event);
    if (i >= 0 && masked[i] !== painting) { masked[i] = painting; draw(); }
  }
  canvas.addEventListener("pointerdown", (event) => {
    const erase = event.shiftKey || event.button === 2 || $(panel, ".brush:checked").value === "erase";
    painting = erase ? 0 : 1;
    canvas.setPointerCapture(event.pointerId);
    paintAt(event);
  });
  canvas.addEventListener("pointermove", (event) => { if (painting !== null) paintAt(event); });
  canvas.addEventListener("pointerup", () => { if (painting !== null) { painting = null; reconstruct(); } });
  canvas.addEventListener("contextmenu", (event) => event.preventDefault());

  panel.querySelectorAll(".brush").forEach((radio) => { radio.name = `brush-${run.name}`; });
  $(panel, ".clear").addEventListener("click", () => { masked.fill(0); draw(); });
  $(panel, ".ratio").addEventListener("input", (e) => { $(panel, ".ratio-out").textContent = e.target.value; });
  panel.querySelectorAll("button.draw").forEach((b) => b.addEventListener("click", () => { if (source) drawMask(b.dataset.masking); }));
  $(panel, ".show-rollout").addEventListener("change", draw);
  $(panel, ".image-file").addEventListener("change", (e) => { if (e.target.files[0]) pick({ file: e.target.files[0], example: -1 }); });
  const examples = $(panel, ".examples");
  for (let i = 0; i < d.examples; i++) {
    const img = document.createElement("img");
    img.src = `/api/runs/${run.name}/examples/${i}`;
    img.alt = `example ${i}`;
    img.addEventListener("click", () => pick({ example: i }));
    examples.appendChild(img);
  }
  draw();
  if (d.examples > 0) pick({ example: 0 }); else setStatus(panel, "upload an image to start");
  return panel;
}

// ------------------------------------------------------------------------------------------------ MLM
function heatmap(canvas, tokens, matrix) {
  const n = tokens.length, cell = Math.max(8, Math.min(26, Math.floor(460 / n)));
  const ctx0 = canvas.getContext("2d");
  ctx0.font = "12px system-ui, sans-serif";
  const label = Math.ceil(Math.max(...tokens.map((t) => ctx0.measureText(t).width))) + 8;
  canvas.width = label + n * cell + 2; canvas.height = label + n * cell + 2;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.font = "12px system-ui, sans-serif"; ctx.fillStyle = "#1d2330"; ctx.textBaseline = "middle";
  tokens.forEach((t, i) => {
    ctx.textAlign = "right"; ctx.fillText(t, label - 4, label + i * cell + cell / 2);
    ctx.save(); ctx.translate(label + i * cell + cell / 2, label - 4); ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "left"; ctx.fillText(t, 0, 0); ctx.restore();
  });
  // Colour scaled to this matrix's largest weight, so a near-uniform map still shows its structure.
  const top = Math.max(1e-12, ...matrix.flat());
  matrix.forEach((row, q) => row.forEach((w, k) => {
    const shade = Math.round(255 * (1 - w / top));
    ctx.fillStyle = `rgb(${shade}, ${Math.round(shade * 0.85 + 30)}, 255)`;
    ctx.fillRect(label + k * cell, label + q * cell, cell, cell);
  }));
  return top;
}

function mlmPanel(run) {
  const panel = fromTemplate("tpl-mlm", run);
  const d = run.details;
  $(panel, ".run-meta").textContent = `${d.layers} layers × ${d.heads} heads, up to ${d.max_len} tokens, mask token ${d.mask_token}`;
  let attention = null;

  function showAttention() {
    if (!attention) return;
    const layer = Number($(panel, ".layer").value), head = $(panel, ".head").value;
    const heads = attention.weights[layer];
    const matrix = head === "mean"
      ? heads[0].map((row, q) => row.map((_, k) => heads.reduce((s, h) => s + h[q][k], 0) / heads.length))
      : heads[Number(head)];
    const top = heatmap($(panel, "canvas.heatmap"), attention.tokens, matrix);
    $(panel, ".heat-legend").textContent = `white = 0, darkest = ${top.toFixed(3)} (each row sums to 1; `
      + `uniform would be ${(1 / attention.tokens.length).toFixed(3)})`;
  }
  $(panel, ".layer").addEventListener("change", showAttention);
  $(panel, ".head").addEventListener("change", showAttention);

  $(panel, ".fill-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = $(panel, ".fill-text").value, top_k = Number($(panel, ".top-k").value);
    setStatus(panel, "filling…");
    const fills = $(panel, ".fills");
    fills.replaceChildren();
    try {
      const body = await (await api(`/api/runs/${run.name}/fill`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text, top_k }),
      })).json();
      body.masks.forEach((m, n) => {
        const table = document.createElement("table");
        table.className = "fill-result";
        table.innerHTML = `<tr><th colspan="3">[MASK] ${n + 1} (token ${m.position})</th></tr>`;
        m.candidates.forEach((c) => {
          const tr = table.insertRow();
          tr.insertCell().textContent = c.token;
          const bar = document.createElement("span");
          bar.className = "bar"; bar.style.width = `${Math.max(1, Math.round(120 * c.probability))}px`;
          tr.insertCell().appendChild(bar);
          tr.insertCell().textContent = c.probability.toFixed(3);
        });
        fills.appendChild(table);
      });
      setStatus(panel, "ready");
      attention = await (await api(`/api/runs/${run.name}/attention`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text, max_tokens: 48 }),
      })).json();
      const layer = $(panel, ".layer"), head = $(panel, ".head");
      layer.replaceChildren(...Array.from({ length: attention.layers }, (_, i) => new Option(String(i), String(i))));
      head.replaceChildren(new Option("mean", "mean"),
        ...Array.from({ length: attention.heads }, (_, i) => new Option(String(i), String(i))));
      $(panel, ".attention").hidden = false;
      showAttention();
      if (attention.notes.length) setStatus(panel, attention.notes.join("; "));
    } catch (err) { setStatus(panel, err.message, true); }
  });
  return panel;
}

// ------------------------------------------------------------------------------------------------ CLM
function clmPanel(run) {
  const panel = fromTemplate("tpl-clm", run);
  const d = run.details;
  $(panel, ".run-meta").textContent = `${d.layers} layers × ${d.heads} heads, context ${d.context} tokens`;
  let controller = null;
  $(panel, ".stop").addEventListener("click", () => controller && controller.abort());
  $(panel, ".gen-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { prompt: $(panel, ".prompt").value };
    // An empty box sends nothing (the server's default), not Number("") = 0 (greedy for temperature).
    for (const [key, box] of [["max_tokens", ".max-tokens"], ["temperature", ".temperature"], ["seed", ".seed"]]) {
      const value = $(panel, box).value.trim();
      if (value !== "") body[key] = Number(value);
    }
    const out = $(panel, ".g-new");
    $(panel, ".g-prompt").textContent = body.prompt; out.textContent = "";
    controller = new AbortController();
    $(panel, ".stop").disabled = false;
    setStatus(panel, "generating…");
    let tokens = 0;
    try {
      const response = await api(`/api/runs/${run.name}/generate`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
        signal: controller.signal,
      });
      const reader = response.body.getReader(), decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {  // one server-sent event per blank-line-ended block
          const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
          const event = (block.match(/^event: (.*)$/m) || [])[1], data = JSON.parse((block.match(/^data: (.*)$/m) || [])[1]);
          if (event === "token") { tokens += 1; if ("delta" in data) out.textContent += data.delta; else out.textContent = data.text; }
          else if (event === "done") setStatus(panel, `${data.tokens} tokens`);
          else if (event === "error") setStatus(panel, data.error, true);
        }
      }
    } catch (err) {
      setStatus(panel, err.name === "AbortError" ? `stopped after ${tokens} tokens` : err.message, err.name !== "AbortError");
    }
    $(panel, ".stop").disabled = true;
  });
  return panel;
}

// ---------------------------------------------------------------------------------------------- table
function tablePanel(run) {
  const panel = fromTemplate("tpl-table", run);
  const d = run.details;
  $(panel, ".run-meta").textContent = `columns ${d.columns.join(", ")}` + (d.exclude.length ? ` (trained without ${d.exclude.join(", ")})` : "");

  function upload() {
    const file = $(panel, ".csv-file").files[0];
    if (!file) throw new Error("file: choose a CSV file first");
    const form = new FormData();
    form.append("file", file);
    form.append("exclude", $(panel, ".exclude").value);
    return form;
  }

  $(panel, ".impute").addEventListener("click", async () => {
    try {
      setStatus(panel, "imputing…");
      const response = await api(`/api/runs/${run.name}/impute`, { method: "POST", body: upload() });
      const counts = JSON.parse(response.headers.get("X-Masklab-Filled") || "{}");
      const total = Object.values(counts).reduce((a, b) => a + b, 0);
      const link = document.createElement("a");
      link.href = URL.createObjectURL(await response.blob()); link.download = "imputed.csv"; link.click();
      $(panel, ".result-line").textContent = `filled ${total} missing cells (${Object.entries(counts).map(([c, n]) => `${c}: ${n}`).join(", ")}) → imputed.csv`;
      setStatus(panel, "ready");
    } catch (err) { setStatus(panel, err.message, true); }
  });

  $(panel, ".score").addEventListener("click", async () => {
    try {
      setStatus(panel, "scoring…");
      const body = await (await api(`/api/runs/${run.name}/score`, { method: "POST", body: upload() })).json();
      const top = new Set(body.top_cells.map((c) => `${c.row}/${c.column}`));
      const maxError = Math.max(1e-12, ...body.rows.flatMap((r) => r.errors.filter((e) => e !== null)));
      const table = document.createElement("table");
      table.innerHTML = `<tr><th>row</th><th>anomaly score</th>${body.columns.map((c) => `<th></th>`).join("")}</tr>`;
      body.columns.forEach((c, j) => { table.rows[0].cells[j + 2].textContent = c; });
      body.rows.forEach((r) => {
        const tr = table.insertRow();
        tr.insertCell().textContent = r.row;
        tr.insertCell().textContent = r.score === null ? "" : r.score.toFixed(3);
        r.cells.forEach((value, j) => {
          const td = tr.insertCell(), e = r.errors[j];
          td.textContent = value;
          if (e === null) { td.classList.add("missing"); td.title = "missing: not scored"; return; }
          td.title = `reconstruction error ${e.toFixed(4)}`;
          td.style.background = `rgba(232, 89, 12, ${(0.6 * e / maxError).toFixed(3)})`;
          if (top.has(`${r.row}/${body.columns[j]}`)) td.classList.add("top");
        });
      });
      $(panel, ".scores").replaceChildren(table);
      $(panel, ".result-line").textContent = `${body.total_rows} rows scored; the ${body.rows.length} highest shown, `
        + `the ${body.top_cells.length} most surprising cells outlined (colour = reconstruction error)`;
      setStatus(panel, "ready");
    } catch (err) { setStatus(panel, err.message, true); }
  });
  return panel;
}

// --------------------------------------------------------------------------------------------- start
// series.js and segment.js (loaded first) add seriesPanel and segmentPanel.
const BUILDERS = { mae: maePanel, mlm: mlmPanel, clm: clmPanel, table: tablePanel, series: seriesPanel, segment: segmentPanel };

(async () => {
  try {
    const runs = await (await api("/api/runs")).json();
    document.getElementById("runs-line").textContent = runs.map((r) => `${r.name} (${r.kind})`).join(" · ");
    const main = document.getElementById("panels");
    runs.forEach((run) => {
      const panel = BUILDERS[run.kind](run);
      main.appendChild(panel);
      // Notes stay on their own line (the status line changes with every request); a head's notes go to its panel.
      const own = run.kind === "mae" ? run.notes.filter((n) => !n.startsWith("segmentation: ")) : run.notes;
      const notes = $(panel, ".notes");
      if (own.length && notes) notes.textContent = own.join("; "); else if (own.length) setStatus(panel, own.join("; "));
      if (run.kind === "mae" && run.details.segmentation) main.appendChild(segmentPanel(run));
    });
    document.body.dataset.ready = "1";
  } catch (err) {
    document.getElementById("runs-line").textContent = `cannot load the runs: ${err.message}`;
  }
})();
