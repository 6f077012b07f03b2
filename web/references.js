// The page's few-shot references: a few images of the product in good condition, dropped beside
// the ones to inspect, become a memory on the device (detector.setReferences) that sharpens every
// map; the status line says they are in use, and they can be cleared.

/**
 * Wires the references controls. `call` talks to the worker, `ready()` says whether a model is
 * loaded, `rerun()` detects every image again. Returns `reset()`, for a newly loaded model (it
 * starts without references).
 */
export function setupReferences({ $, call, ready, rerun }) {
  const status = $("references-status");
  const clear = $("references-clear");

  function show(shots, note = "") {
    status.dataset.shots = String(shots);
    delete status.dataset.kind;
    clear.hidden = shots === 0;
    status.textContent =
      shots === 0
        ? "No references: zero-shot. A few images of the product in good condition sharpen the maps (few-shot)."
        : `Using ${shots} reference image${shots === 1 ? "" : "s"} of good products (few-shot): maps add how ` +
          `unlike them each region is.${note}`;
  }

  async function use(files) {
    if (!files.length) return;
    if (!ready()) {
      status.textContent = "Load a model first; references are made with it.";
      status.dataset.kind = "argument";
      return;
    }
    status.textContent = `Reading ${files.length} reference image${files.length === 1 ? "" : "s"}…`;
    try {
      const r = await call("setReferences", { files });
      const names = r.skipped.map((s) => `${files[s.index]?.name ?? `#${s.index + 1}`} (${s.message})`);
      show(r.shots, names.length ? ` Skipped ${names.length} that could not be read: ${names.join("; ")}.` : "");
      rerun();
    } catch (e) {
      status.textContent = `Could not use the references: ${e?.message ?? e}`;
      status.dataset.kind = e?.kind ?? "internal";
    }
  }

  $("reference-files").onchange = (e) => {
    const files = [...e.target.files];
    e.target.value = "";
    use(files);
  };
  clear.onclick = async () => {
    try {
      await call("clearReferences");
      show(0);
      rerun();
    } catch (e) {
      status.textContent = `Could not clear the references: ${e?.message ?? e}`;
    }
  };
  show(0);
  return { reset: (shots = 0) => show(shots), use };
}
