// The page's worker: it runs the tokenclip package (model, GPU or CPU, decoding, overlays) so the
// page never freezes, whatever the image or model size (on the CPU backend a pass blocks the
// thread it runs on: this one). It is a plain user of the JS API.
//
// Protocol: the page posts { id, op, args }; the worker answers { id, progress } while loading and
// finally { id, ok: true, result } or { id, ok: false, error: { name, kind, message } }.

import init, { Detector, checkWebGpu, decodeImage, encodePng, renderOverlay, setTestGpuFault, wasmMemoryBytes } from "./pkg/tokenclip.js";

// The smallest module using a WebAssembly SIMD instruction (i32.const 0; i8x16.splat): the
// package is built with simd128 and cannot even compile where it is missing.
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, 0x03, 0x02, 0x01, 0x00,
  0x0a, 0x08, 0x01, 0x06, 0x00, 0x41, 0x00, 0xfd, 0x0f, 0x0b,
]);

const ready = WebAssembly.validate(SIMD_PROBE)
  ? init()
  : Promise.reject(
      Object.assign(
        new Error(
          "this browser's WebAssembly has no SIMD (simd128), which tokenclip needs; update the browser " +
            "(Chrome or Edge 91, Firefox 89, Safari 16.4 or later)",
        ),
        { name: "TokenclipError", kind: "unsupported" },
      ),
    );
ready.catch(() => {}); // reported to the page by the first call
/** @type {Detector | null} */
let detector = null;
/** The backend the loaded detector last ran on. */
let loadedOn = null;
/** Decoded images and their results, by the page's image id. */
const images = new Map();

function describe(d, ms) {
  return {
    name: d.fileName,
    modelName: d.modelName,
    inputSize: d.inputSize,
    bytes: d.fileBytes,
    origin: d.origin,
    adapter: d.adapter,
    backend: d.backend,
    backendReason: d.backendReason ?? null,
    wasmMemoryBytes: wasmMemoryBytes(),
    cacheKey: d.cacheKey ?? null,
    cacheError: d.cacheError ?? null,
    weights: d.config?.weights ?? null,
    references: d.references,
    loadMs: ms,
  };
}

function overlayOf(entry, opacity, threshold, colorBar) {
  return renderOverlay(entry.image, entry.result, { opacity, threshold, colorBar });
}

const ops = {
  async status({ named }) {
    const webgpu = await checkWebGpu();
    let cached = [];
    try {
      cached = await Detector.cachedModels();
    } catch {
      // No cache: nothing to offer.
    }
    let models = [];
    let modelsError = null;
    try {
      models = Detector.models(named ?? {});
    } catch (e) {
      modelsError = e?.message ?? String(e);
    }
    return { webgpu, cached, models, modelsError };
  },

  // `source`: a name, URL, File or bytes; `named`: hub/GitHub endpoints and an extra registry;
  // `backend`: "auto", "webgpu" or "cpu".
  async load({ source, cacheKey, named, backend }, progress) {
    const t0 = performance.now();
    const options = { onProgress: progress, backend: backend ?? "auto", ...(named ?? {}) };
    const next = cacheKey ? await Detector.loadCached(cacheKey, options) : await Detector.load(source, options);
    const ms = performance.now() - t0;
    detector?.free();
    detector = next;
    loadedOn = detector.backend;
    images.clear();
    // Keep one model in the cache: the one in use.
    try {
      for (const m of await Detector.cachedModels()) {
        if (m.key !== detector.cacheKey) await Detector.removeCached(m.key);
      }
    } catch {
      // A cache that cannot be listed holds nothing to remove.
    }
    return describe(detector, ms);
  },

  async forget() {
    let removed = 0;
    for (const m of await Detector.cachedModels()) {
      if (await Detector.removeCached(m.key)) removed += 1;
    }
    return { removed };
  },

  async detect({ id, file, opacity, threshold }) {
    if (!detector) throw Object.assign(new Error("load a model first"), { name: "TokenclipError", kind: "argument" });
    const t0 = performance.now();
    const image = await decodeImage(file);
    const t1 = performance.now();
    const result = await detector.detect(image);
    const t2 = performance.now();
    const entry = { image, result };
    images.set(id, entry);
    const overlay = overlayOf(entry, opacity, threshold, false);
    const map = result.map.slice();
    // Under "auto" a GPU that failed hands over to the CPU: the page hears of it with the result.
    const model = result.backend !== loadedOn ? describe(detector, null) : undefined;
    loadedOn = result.backend;
    return [
      { ...result, map, overlay, decodeMs: t1 - t0, detectMs: t2 - t1, wasmMemoryBytes: wasmMemoryBytes(), model },
      [overlay.data.buffer, map.buffer],
    ];
  },

  async render({ id, opacity, threshold }) {
    const entry = images.get(id);
    if (!entry) return null;
    const overlay = overlayOf(entry, opacity, threshold, false);
    return [overlay, [overlay.data.buffer]];
  },

  async png({ id, opacity, threshold }) {
    const entry = images.get(id);
    if (!entry) throw new Error("that image is no longer loaded");
    return new Blob([encodePng(overlayOf(entry, opacity, threshold, true))], { type: "image/png" });
  },

  // Few-shot references: good images of the product (Files), made into the detector's memory.
  async setReferences({ files }) {
    if (!detector) throw Object.assign(new Error("load a model first"), { name: "TokenclipError", kind: "argument" });
    const r = await detector.setReferences(files);
    return { shots: r.shots, skipped: r.skipped };
  },

  async clearReferences() {
    await detector?.clearReferences();
    return null;
  },

  // For tests only (setTestGpuFault): the GPU fails on purpose, to see the page fail over.
  async testGpuFault({ plan }) {
    setTestGpuFault(plan ?? undefined);
    return null;
  },

  async drop({ id }) {
    images.delete(id);
    return null;
  },
};

function plainError(e) {
  return { name: e?.name ?? "Error", kind: e?.kind ?? "internal", message: e?.message ?? String(e) };
}

self.onmessage = async (event) => {
  const { id, op, args } = event.data;
  try {
    await ready;
    const progress = (p) => self.postMessage({ id, progress: p });
    const out = await ops[op](args ?? {}, progress);
    const [result, transfer] = Array.isArray(out) ? out : [out, []];
    self.postMessage({ id, ok: true, result }, transfer);
  } catch (e) {
    self.postMessage({ id, ok: false, error: plainError(e) });
  }
};
