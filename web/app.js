// The page: model loading with progress, image queue, overlays, thresholds, downloads. The model
// runs in worker.js (the tokenclip package); this file only talks to it and draws.

import { setupReferences } from "./references.js";

const $ = (id) => document.getElementById(id);

// ---- the worker -----------------------------------------------------------------------------

const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
const pending = new Map();
let nextCall = 1;

/** Calls the worker; resolves with its result, rejects with { name, kind, message }. */
function call(op, args = {}, { onProgress, transfer = [] } = {}) {
  const id = nextCall++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject, onProgress });
    worker.postMessage({ id, op, args }, transfer);
  });
}

worker.onmessage = (event) => {
  const { id, progress, ok, result, error } = event.data;
  const p = pending.get(id);
  if (!p) return;
  if (progress) {
    p.onProgress?.(progress);
    return;
  }
  pending.delete(id);
  ok ? p.resolve(result) : p.reject(error);
};

worker.onerror = (event) => {
  // A worker that fails to start (no module workers, the package missing) or dies.
  const message = event.message || "the worker stopped";
  showFatal(`tokenclip could not start: ${message}. Is web/pkg built (tools/build_web.sh) and served with the page?`);
  for (const p of pending.values()) p.reject({ name: "Error", kind: "internal", message });
  pending.clear();
};

// ---- state ----------------------------------------------------------------------------------

const state = {
  webgpu: null, // checkWebGpu() result
  backend: "auto", // what loads ask for: auto | webgpu | cpu
  lastLoad: null, // the args of the last successful load, to reload on another backend
  model: null, // describe() of the loaded model
  modelState: "none", // none | loading | ready | error
  images: [], // { id, name, file, state, result, error, card, canvas }
  queue: Promise.resolve(),
  named: {}, // hub/GitHub endpoints and an extra registry for named models
  models: [], // Detector.models()
};
let nextImage = 1;

// Exposed for tests and for the curious: results with their maps.
window.tokenclipPage = {
  state,
  // For tests only: the worker's GPU fails on purpose at its N-th readback ("lost:N", "oom:N").
  testGpuFault: (plan) => call("testGpuFault", { plan }),
  results: () =>
    state.images.map((im) => ({
      name: im.name,
      state: im.state,
      score: im.result?.score ?? null,
      mapMax: im.result?.mapMax ?? null,
      width: im.result?.width ?? null,
      height: im.result?.height ?? null,
      detectMs: im.result?.detectMs ?? null,
      map: im.result ? Array.from(im.result.map) : null,
      error: im.error ?? null,
    })),
};

const opacity = () => Number($("opacity").value);
const threshold = () => Number($("threshold").value);

// ---- WebGPU and the model -------------------------------------------------------------------

const sentence = (s) => (s ? s[0].toUpperCase() + s.slice(1) : s);

function showFatal(message, kind = "internal") {
  const box = $("webgpu-problem");
  box.hidden = false;
  box.dataset.kind = kind;
  $("webgpu-message").textContent = sentence(message);
}

function setModelStatus(kind, text) {
  state.modelState = kind;
  const el = $("model-status");
  el.dataset.state = kind;
  delete el.dataset.kind;
  el.textContent = text;
}

const mb = (bytes) => (bytes / 1048576).toFixed(1);
const PHASES = {
  gpu: "Preparing the GPU (adapter, device, kernels)",
  cache: "Reading the model from this browser's storage",
  download: "Downloading the model",
  verify: "Checking the download against its published hash",
  convert: "Converting the checkpoint into a model file (once; it is then kept in this browser)",
  read: "Reading the model file",
  upload: "Uploading the weights",
};

// When each loading phase started (performance.now()), to report where the time went.
let phaseStarts = [];

const PHASE_NAMES = {
  gpu: "GPU setup",
  cache: "reading storage",
  download: "download",
  verify: "verifying",
  convert: "converting",
  read: "reading",
  upload: "upload",
};

function showProgress(p) {
  if (!phaseStarts.some(([phase]) => phase === p.phase)) phaseStarts.push([p.phase, performance.now()]);
  $("model-progress").hidden = false;
  const bar = $("model-progress-bar");
  const known = p.total && p.total > 0;
  if (known) bar.value = Math.min(1, p.loaded / p.total);
  else bar.removeAttribute("value");
  const amount = p.phase === "gpu" ? "" : known ? `: ${mb(p.loaded)} of ${mb(p.total)} MB` : `: ${mb(p.loaded)} MB`;
  $("model-progress-text").textContent = `${PHASES[p.phase] ?? p.phase}${amount}`;
}

function explain(error) {
  if (!error) return "unknown error";
  return error.message || String(error);
}

async function loadModel(args, what) {
  const asked = args;
  args = { ...args, named: state.named, backend: state.backend };
  setModelStatus("loading", `Loading ${what}…`);
  setInputsEnabled(false);
  phaseStarts = [];
  try {
    const m = await call("load", args, { onProgress: showProgress });
    const end = performance.now();
    const phases = Object.fromEntries(
      phaseStarts.map(([phase, t], i) => [phase, ((phaseStarts[i + 1]?.[1] ?? end) - t) / 1000]),
    );
    state.model = m;
    state.lastLoad = { args: asked, what };
    const where = { cache: "from this browser's storage", network: "from the network", file: "from your disk", bytes: "" }[m.origin];
    const cached = m.cacheKey
      ? "It is kept in this browser's storage for the next visit."
      : m.cacheError
        ? `It could not be kept in this browser's storage (${m.cacheError}).`
        : "";
    setModelStatus(
      "ready",
      `Loaded ${m.name} (${m.modelName}, ${m.weights ?? ""} weights, ${mb(m.bytes)} MB, input ${m.inputSize} px) ` +
        `${where} in ${(m.loadMs / 1000).toFixed(1)} s ` +
        `(${Object.entries(phases).map(([k, v]) => `${PHASE_NAMES[k] ?? k} ${v.toFixed(1)} s`).join(", ")}) ` +
        `on ${m.adapter}${m.backendReason ? ` (${m.backendReason})` : ""}. ${cached}`,
    );
    $("model-status").dataset.backend = m.backend;
    showDevice(m);
    $("model-status").dataset.phases = JSON.stringify(phases);
    $("model-status").dataset.origin = m.origin;
    $("model-status").dataset.loadMs = String(m.loadMs);
    $("model-forget").hidden = !m.cacheKey;
    // A new model starts without references (or with its file's own memory).
    references.reset(m.references ?? 0);
    // Results of another model are stale: run every image again.
    for (const im of state.images) enqueue(im);
  } catch (e) {
    // A failed load leaves the previous model (if any) in use.
    const still = state.model ? `; still using ${state.model.name}` : "";
    setModelStatus("error", `Could not load ${what}: ${explain(e).replace(/\.$/, "")}${still}.`);
    if (state.model) state.modelState = "ready";
    $("model-status").dataset.kind = e?.kind ?? "internal";
  } finally {
    $("model-progress").hidden = true;
    setInputsEnabled(true);
  }
}

function setInputsEnabled(on) {
  for (const id of ["model-file", "model-url", "model-url-load", "model-name", "model-name-load", "backend"]) $(id).disabled = !on;
}

/** The device line: which backend runs the loaded model (or would run the next one). */
function showDevice(model) {
  const el = $("webgpu-ok");
  el.hidden = false;
  const gpu = state.webgpu;
  if (model) {
    el.dataset.backend = model.backend;
    el.textContent =
      model.backend === "webgpu"
        ? `Running on WebGPU: ${model.adapter}.`
        : `Running on ${model.adapter}${model.backendReason ? `, because ${model.backendReason}` : ""}; ` +
          "WebGPU is several times faster where the browser offers it.";
  } else if (gpu?.available) {
    el.textContent = `WebGPU adapter: ${gpu.adapter}.`;
  } else {
    el.textContent =
      `WebGPU is unavailable here (${(gpu?.message ?? "no adapter").split(". ")[0].replace(/\.$/, "")}); ` +
      "models run on the CPU (WebAssembly SIMD), which is slower but gives the same results.";
  }
}

// ---- images ---------------------------------------------------------------------------------

function addImages(files) {
  for (const file of files) {
    const im = { id: nextImage++, name: file.name || "image", file, state: "pending", result: null, error: null };
    im.card = makeCard(im);
    $("results").append(im.card);
    state.images.push(im);
    enqueue(im);
  }
  updateSummary();
}

function makeCard(im) {
  const card = document.createElement("article");
  card.className = "card";
  card.dataset.name = im.name;
  card.dataset.state = "pending";
  card.innerHTML = `
    <div class="name"></div>
    <canvas width="1" height="1" hidden></canvas>
    <div class="score">Waiting…</div>
    <div class="details muted"></div>
    <div class="actions">
      <button type="button" class="download" disabled>Download overlay PNG</button>
      <button type="button" class="remove">Remove</button>
    </div>`;
  card.querySelector(".name").textContent = im.name;
  im.canvas = card.querySelector("canvas");
  card.querySelector(".download").onclick = () => downloadOverlay(im);
  card.querySelector(".remove").onclick = () => removeImage(im);
  return card;
}

function enqueue(im) {
  im.state = "pending";
  im.card.dataset.state = "pending";
  state.queue = state.queue.then(() => runImage(im)).catch((e) => console.error(e));
}

async function runImage(im) {
  if (!state.images.includes(im)) return;
  const scoreEl = im.card.querySelector(".score");
  if (state.modelState !== "ready") {
    scoreEl.textContent = "Waiting for a model…";
    return;
  }
  im.state = "running";
  im.card.dataset.state = "running";
  scoreEl.textContent = "Detecting…";
  try {
    const r = await call("detect", { id: im.id, file: im.file, opacity: opacity(), threshold: threshold() });
    if (r.model) {
      // The GPU failed and the CPU took over (backend "auto"): say so where the device is shown.
      state.model = { ...r.model, loadMs: state.model?.loadMs ?? null };
      showDevice(state.model);
    }
    delete r.model;
    im.result = r;
    im.error = null;
    im.state = "done";
    drawOverlay(im, r.overlay);
    delete r.overlay;
    im.card.dataset.score = String(r.score);
    im.card.dataset.mapMax = String(r.mapMax);
    im.card.querySelector(".details").textContent =
      `map max ${r.mapMax.toFixed(3)} · ${r.imageWidth}×${r.imageHeight} px · ` +
      `decoded in ${r.decodeMs.toFixed(0)} ms, detected in ${r.detectMs.toFixed(0)} ms`;
    im.card.querySelector(".download").disabled = false;
  } catch (e) {
    im.result = null;
    im.error = { kind: e?.kind ?? "internal", message: explain(e) };
    im.state = "error";
    im.card.dataset.errorKind = im.error.kind;
    im.canvas.hidden = true;
    scoreEl.innerHTML = "";
    const err = document.createElement("span");
    err.className = "error";
    err.textContent = im.error.message;
    scoreEl.append(err);
  }
  im.card.dataset.state = im.state;
  refreshScore(im);
  updateSummary();
}

function drawOverlay(im, overlay) {
  if (!overlay) return;
  im.canvas.width = overlay.width;
  im.canvas.height = overlay.height;
  im.canvas.getContext("2d").putImageData(overlay, 0, 0);
  im.canvas.hidden = false;
}

function refreshScore(im) {
  if (im.state !== "done") return;
  const flagged = im.result.score >= threshold();
  im.card.dataset.flagged = String(flagged);
  const scoreEl = im.card.querySelector(".score");
  scoreEl.textContent = `score ${im.result.score.toFixed(4)}`;
  if (flagged) {
    const badge = document.createElement("span");
    badge.className = "flag";
    badge.textContent = "anomalous";
    scoreEl.append(badge);
  }
}

function updateSummary() {
  const done = state.images.filter((im) => im.state === "done");
  const failed = state.images.filter((im) => im.state === "error").length;
  const flagged = done.filter((im) => im.result.score >= threshold()).length;
  const waiting = state.images.length - done.length - failed;
  $("summary").textContent = state.images.length
    ? `${done.length} scored, ${flagged} flagged at ≥ ${threshold().toFixed(2)}` +
      (failed ? `, ${failed} could not be read` : "") +
      (waiting ? `, ${waiting} waiting` : "")
    : "";
  $("download-scores").disabled = done.length === 0;
  $("clear-images").disabled = state.images.length === 0;
}

function removeImage(im) {
  state.images = state.images.filter((x) => x !== im);
  im.card.remove();
  call("drop", { id: im.id }).catch(() => {});
  updateSummary();
}

function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function downloadOverlay(im) {
  try {
    const blob = await call("png", { id: im.id, opacity: opacity(), threshold: threshold() });
    const stem = im.name.replace(/\.[^.]*$/, "");
    download(blob, `${stem}.overlay.png`);
  } catch (e) {
    alert(`Could not make the PNG: ${explain(e)}`);
  }
}

function downloadScores() {
  const t = threshold();
  const quote = (s) => `"${s.replaceAll('"', '""')}"`;
  const rows = ["name,score,map_max,flagged,error"];
  for (const im of state.images) {
    const r = im.result;
    rows.push(
      [quote(im.name), r ? r.score : "", r ? r.mapMax : "", r ? r.score >= t : "", im.error ? quote(im.error.message) : ""].join(","),
    );
  }
  download(new Blob([rows.join("\n") + "\n"], { type: "text/csv" }), "scores.csv");
}

// Re-render overlays when a slider moves: one round at a time, the latest values win.
let rendering = false;
let renderAgain = false;
async function renderAll() {
  if (rendering) {
    renderAgain = true;
    return;
  }
  rendering = true;
  do {
    renderAgain = false;
    for (const im of state.images.filter((x) => x.state === "done")) {
      try {
        const overlay = await call("render", { id: im.id, opacity: opacity(), threshold: threshold() });
        drawOverlay(im, overlay);
      } catch {
        // The image was removed meanwhile.
      }
      if (renderAgain) break;
    }
  } while (renderAgain);
  rendering = false;
}

// ---- wiring ---------------------------------------------------------------------------------

$("model-file").onchange = (e) => {
  const f = e.target.files?.[0];
  if (f) loadModel({ source: f }, f.name);
  e.target.value = "";
};
$("model-url-form").onsubmit = (e) => {
  e.preventDefault();
  const url = $("model-url").value.trim();
  if (url) loadModel({ source: url }, url);
};
$("model-name").onchange = () => describeNamed();
$("model-name-load").onclick = () => {
  const name = $("model-name").value;
  if (name) loadModel({ source: name }, name);
};
$("model-forget").onclick = async () => {
  await call("forget").catch(() => {});
  $("model-forget").hidden = true;
  setModelStatus(state.modelState, `${$("model-status").textContent.replace(/ It is kept.*$/, "")} Removed from this browser's storage.`);
};
$("image-files").onchange = (e) => {
  addImages([...e.target.files]);
  e.target.value = "";
};
$("backend").onchange = () => {
  state.backend = $("backend").value;
  // The model in use moves to the backend chosen (from the browser's storage when it is there).
  const last = state.lastLoad;
  if (!last) return;
  const args = state.model?.cacheKey ? { cacheKey: state.model.cacheKey } : last.args;
  loadModel(args, last.what);
};
$("download-scores").onclick = downloadScores;
const references = setupReferences({
  $,
  call,
  ready: () => state.modelState === "ready",
  rerun: () => state.images.forEach(enqueue),
});
$("clear-images").onclick = () => [...state.images].forEach(removeImage);

for (const [input, output] of [["opacity", "opacity-value"], ["threshold", "threshold-value"]]) {
  $(input).addEventListener("input", () => {
    $(output).textContent = Number($(input).value).toFixed(2);
    state.images.forEach(refreshScore);
    updateSummary();
    renderAll();
  });
}

// Drop images (or a .safetensors model) anywhere on the page.
const zone = $("drop-zone");
document.addEventListener("dragover", (e) => {
  e.preventDefault();
  zone.classList.add("over");
});
document.addEventListener("dragleave", (e) => {
  if (!e.relatedTarget) zone.classList.remove("over");
});
document.addEventListener("drop", (e) => {
  e.preventDefault();
  zone.classList.remove("over");
  const files = [...(e.dataTransfer?.files ?? [])];
  const model = files.find((f) => f.name.endsWith(".safetensors"));
  if (model) loadModel({ source: model }, model.name);
  addImages(files.filter((f) => f !== model));
});

// ---- start ----------------------------------------------------------------------------------

// ---- named models ---------------------------------------------------------------------------

/** A small machine: few cores or little memory (navigator.deviceMemory is coarse, Chromium only). */
function smallMachine() {
  return (navigator.deviceMemory ?? 8) <= 4 || (navigator.hardwareConcurrency ?? 8) <= 4;
}

/** Endpoints and an extra registry from the page's address: ?hub=URL&github=URL&registry=URL. */
async function namedOptions() {
  const q = new URLSearchParams(location.search);
  const named = {};
  if (q.get("hub")) named.hubEndpoint = q.get("hub");
  if (q.get("github")) named.githubEndpoint = q.get("github");
  if (q.get("registry")) {
    const r = await fetch(q.get("registry"));
    if (!r.ok) throw new Error(`cannot read the registry ${q.get("registry")}: HTTP ${r.status}`);
    named.registry = await r.text();
  }
  return named;
}

function fillNamed(models) {
  state.models = models;
  const select = $("model-name");
  select.replaceChildren();
  const light = smallMachine();
  const order = [...models].sort((a, b) => (light ? b.light - a.light : b.default - a.default) || a.name.localeCompare(b.name));
  for (const m of order) {
    const o = document.createElement("option");
    o.value = m.name;
    const size = m.downloadBytes ? `${(m.downloadBytes / 1e6).toFixed(0)} MB download` : "size known once downloading";
    o.textContent = `${m.name}${m.light ? " (light)" : ""}${m.default ? " (default)" : ""} · ${size}`;
    select.append(o);
  }
  describeNamed();
}

function describeNamed() {
  const m = state.models?.find((x) => x.name === $("model-name").value);
  $("model-name-info").textContent = m
    ? `${m.description}.${m.licence ? ` Licence: ${m.licence}.` : ""} Downloaded from its publishers and converted here once, then kept in this browser.`
    : "";
}

async function start() {
  setInputsEnabled(false);
  let status;
  try {
    state.named = await namedOptions();
    status = await call("status", { named: state.named });
  } catch (e) {
    showFatal(`tokenclip could not start: ${explain(e)}`);
    return;
  }
  state.webgpu = status.webgpu;
  const asked = new URLSearchParams(location.search).get("backend");
  if (["auto", "webgpu", "cpu"].includes(asked)) state.backend = asked;
  $("backend").value = state.backend;
  if (status.modelsError) setModelStatus("error", `The model registry could not be read: ${status.modelsError}`);
  fillNamed(status.models ?? []);
  showDevice(null);
  setInputsEnabled(true);
  navigator.storage?.persist?.().catch(() => {});
  const fromQuery = new URLSearchParams(location.search).get("model");
  const cached = status.cached.sort((a, b) => (a.storedAt < b.storedAt ? 1 : -1))[0];
  if (fromQuery) await loadModel({ source: fromQuery }, fromQuery);
  else if (cached) await loadModel({ cacheKey: cached.key }, `${cached.name} from this browser's storage`);
}

start();
