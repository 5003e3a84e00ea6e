// masklab serve: the segmentation panel of an MAE run with a trained head, or of a head folder (uses $, api,
// setStatus and fromTemplate from app.js).
"use strict";

function segmentPanel(run) {
  const panel = fromTemplate("tpl-segment", run);
  const d = run.details.segmentation;
  if (run.kind === "mae") panel.id = `run-${run.name}-segment`;
  const scores = d.scores && d.scores.iou !== undefined ? `, held-out IoU ${d.scores.iou.toFixed(3)}` : "";
  $(panel, ".run-meta").textContent = `${d.classes} classes, head in ${d.head}${scores}`;
  if (!d.remove_subject) {
    const button = $(panel, 'button[data-edit="remove-subject"]');
    button.disabled = true;
    button.title = d.notes.find((n) => n.includes("remove-subject")) || "not offered for this run";
  }
  if (d.notes.length) $(panel, ".notes").textContent = d.notes.join("; ");
  const canvas = $(panel, "canvas.box-canvas"), ctx = canvas.getContext("2d");
  const picture = new Image();
  let source = null, size = null, dragging = null, editUrl = null;

  function boxValue() {
    const text = $(panel, ".box").value.trim();
    return text ? text.split(",").map(Number) : null;
  }

  function draw() {
    if (!size) return;
    const scale = 240 / Math.max(size.width, size.height);  // small images drawn larger, large ones smaller
    canvas.width = Math.round(size.width * scale); canvas.height = Math.round(size.height * scale);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(picture, 0, 0, canvas.width, canvas.height);
    const box = boxValue();
    if (box && box.length === 4 && box.every(Number.isFinite)) {
      ctx.strokeStyle = "#e8590c"; ctx.lineWidth = 2;
      ctx.strokeRect(box[0] * scale, box[1] * scale, (box[2] - box[0]) * scale, (box[3] - box[1]) * scale);
    }
  }
  picture.onload = draw;

  function form() {
    const body = new FormData();
    if (source.file) body.append("image", source.file); else body.append("example", source.example);
    body.append("box", $(panel, ".box").value.trim());
    return body;
  }

  async function segment() {
    if (!source) return;
    setStatus(panel, "segmenting…");
    try {
      const body = await (await api(`/api/runs/${run.name}/segment/mask`, { method: "POST", body: form() })).json();
      size = { width: body.width, height: body.height };
      picture.src = body.image;
      $(panel, ".g-mask").src = body.mask;
      $(panel, ".g-overlay").src = body.overlay;
      $(panel, ".g-side").src = body.side_by_side;
      $(panel, ".g-mask-link").href = body.mask;
      $(panel, ".result-line").textContent = `${body.width}×${body.height} px · ${(100 * body.subject_fraction).toFixed(1)}% subject`
        + (body.box ? ` inside box ${body.box.join(",")}` : "");
      setStatus(panel, "ready");
      panel.dataset.masks = String(Number(panel.dataset.masks || 0) + 1);
    } catch (err) { setStatus(panel, err.message, true); }
  }

  async function edit(what) {
    if (!source) return;
    const body = form();
    body.append("edit", what);
    body.append("radius", $(panel, ".radius").value);
    const bg = $(panel, ".bg-file").files[0];
    if (what === "replace-background" && bg) body.append("background", bg);
    setStatus(panel, `${what}…`);
    try {
      const response = await api(`/api/runs/${run.name}/segment/edit`, { method: "POST", body });
      if (editUrl) URL.revokeObjectURL(editUrl);
      editUrl = URL.createObjectURL(await response.blob());
      $(panel, ".g-edited").src = editUrl;
      const link = $(panel, ".g-download");
      link.href = editUrl; link.download = `${what}.png`; link.hidden = false;
      $(panel, ".edit-line").textContent = `${what}: ${response.headers.get("X-Masklab-Subject-Pixels")} subject pixels`;
      setStatus(panel, "ready");
      panel.dataset.edits = String(Number(panel.dataset.edits || 0) + 1);
    } catch (err) { setStatus(panel, err.message, true); }
  }

  // Drag on the picture to draw the box (image pixels, exclusive end); "clear" removes it.
  function pixelAt(event) {
    const r = canvas.getBoundingClientRect();
    const x = Math.round(((event.clientX - r.left) / r.width) * size.width), y = Math.round(((event.clientY - r.top) / r.height) * size.height);
    return [Math.max(0, Math.min(size.width, x)), Math.max(0, Math.min(size.height, y))];
  }
  canvas.addEventListener("pointerdown", (event) => { if (size) { dragging = pixelAt(event); canvas.setPointerCapture(event.pointerId); } });
  canvas.addEventListener("pointermove", (event) => {
    if (!dragging) return;
    const [x, y] = pixelAt(event);
    $(panel, ".box").value = [Math.min(dragging[0], x), Math.min(dragging[1], y), Math.max(dragging[0], x), Math.max(dragging[1], y)].join(",");
    draw();
  });
  canvas.addEventListener("pointerup", () => {
    if (!dragging) return;
    dragging = null;
    const box = boxValue();
    if (box && (box[2] - box[0] < 1 || box[3] - box[1] < 1)) $(panel, ".box").value = "";  // a click, not a drag
    draw(); segment();
  });
  $(panel, ".box").addEventListener("change", () => { draw(); segment(); });
  $(panel, ".clear-box").addEventListener("click", () => { $(panel, ".box").value = ""; draw(); segment(); });
  panel.querySelectorAll("button[data-edit]").forEach((b) => b.addEventListener("click", () => edit(b.dataset.edit)));
  $(panel, ".bg-file").addEventListener("change", () => { if ($(panel, ".bg-file").files[0]) edit("replace-background"); });

  function pick(newSource) {
    source = newSource;
    $(panel, ".box").value = "";
    panel.querySelectorAll(".examples img").forEach((img, i) => img.classList.toggle("picked", i === source.example));
    segment();
  }
  $(panel, ".seg-file").addEventListener("change", (e) => { if (e.target.files[0]) pick({ file: e.target.files[0], example: -1 }); });
  const examples = $(panel, ".examples");
  for (let i = 0; i < d.examples; i++) {
    const img = document.createElement("img");
    img.src = `/api/runs/${run.name}/segment/examples/${i}`;
    img.alt = `example ${i}`;
    img.addEventListener("click", () => pick({ example: i }));
    examples.appendChild(img);
  }
  if (d.examples > 0) pick({ example: 0 }); else setStatus(panel, "upload an image to start");
  return panel;
}
