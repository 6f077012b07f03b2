//! The TypeScript types of the JS API that wasm-bindgen cannot derive (option objects, results,
//! errors), emitted into `tokenclip.d.ts` and referenced by the exported signatures.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** A model: a name (see `Detector.models()`; downloaded, checked and converted on first use,
 * then cached), a model file's URL (absolute, or relative to the page), its bytes, or a Blob/File. */
export type ModelSource = string | URL | ArrayBuffer | ArrayBufferView | Blob;

/** An image: an ImageBitmap, a Blob/File (PNG and JPEG are decoded exactly as the native CLI
 * does; other formats by the browser), ImageData, or anything `createImageBitmap` accepts. */
export type ImageSource = ImageBitmap | Blob | ImageData | ImageBitmapSource;

/** Loading phases: `gpu` (opening the adapter, building pipelines), `cache` (reading the
 * browser's model cache), `download`, `verify` (a named model's files against their hashes),
 * `convert` (a named model's checkpoint into a model file), `read` (a Blob/File), `upload`
 * (tensors to the GPU). */
export type LoadPhase = "gpu" | "cache" | "download" | "verify" | "convert" | "read" | "upload";

/** A name `Detector.load` accepts (see `Detector.models()`). */
export interface NamedModel {
  name: string;
  description: string;
  licence: string | null;
  /** Suggested first on small machines. */
  light: boolean;
  /** The CLI's default model. */
  default: boolean;
  /** Bytes its original files take to download (null when not pinned). */
  downloadBytes: number | null;
  /** The key its converted file is cached under (see `Detector.cachedModels()`). */
  cacheKey: string;
}

/** One progress report: `loaded` of `total` bytes (`total` is null when unknown). */
export interface LoadProgress {
  phase: LoadPhase;
  loaded: number;
  total: number | null;
}

export interface LoadOptions {
  /** Called as loading advances (at most about once per MiB, and at each phase's start and end). */
  onProgress?: (progress: LoadProgress) => void;
  /** Keep the model file in the browser's Cache API. `true` (default): URLs are cached under their
   * absolute URL and Files under their name, size and date; plain bytes and Blobs only under an
   * explicit key. A string: cache under that key. `false`: do not cache. */
  cache?: boolean | string;
  /** For named models: the Hugging Face hub's address (default https://huggingface.co), e.g. a
   * mirror. */
  hubEndpoint?: string;
  /** For named models: GitHub's raw file server (default https://raw.githubusercontent.com). */
  githubEndpoint?: string;
  /** For named models: the text of a registry file (the CLI's format) adding or replacing names. */
  registry?: string;
  /** Where the model runs. "auto" (default): WebGPU when an adapter opens, else the CPU.
   * "webgpu": WebGPU or the `webgpu-unavailable` error. "cpu": the CPU backend compiled to
   * WebAssembly (SIMD, one thread; the pass blocks its thread, so use it from a worker). */
  backend?: "auto" | "webgpu" | "cpu";
}

/** Where a loaded model runs (`detector.backend`). */
export type BackendName = "webgpu" | "cpu";

/** Where a loaded model's bytes came from. */
export type ModelOrigin = "network" | "cache" | "file" | "bytes";

/** One image's result. */
export interface Detection {
  /** The image score (per the model's score mode), in [0, 1]. */
  score: number;
  /** The global (class-token) score alone. */
  globalScore: number;
  /** The maximum of the map. */
  mapMax: number;
  /** The smoothed anomaly map, `height` rows of `width` values (the model's input size S; resize
   * it to the image with bilinear interpolation to overlay it, as `renderOverlay` does). Values
   * are in [0, layers]. */
  map: Float32Array;
  width: number;
  height: number;
  /** The image's own size. */
  imageWidth: number;
  imageHeight: number;
  /** Feature layers summed into the map. */
  layers: number;
  /** The map's range is [0, mapRange]: `layers`, plus the few-shot weight when references are
   * in use (what `renderOverlay` colours over). */
  mapRange: number;
  /** With references (`setReferences` or a model file's memory): the few-shot map's maximum. */
  fewShotMax?: number;
  /** Where this image ran: "cpu" after a GPU fault under `backend: "auto"` (see `backendReason`). */
  backend: BackendName;
}

/** How `detector.setReferences` builds and uses the few-shot memory (docs/FEW_SHOT.md). */
export interface ReferenceOptions {
  /** 1-indexed layers of the vision tower. Default: the last of each quarter (ViT-L/14: 6, 12,
   * 18, 24; ViT-B/16: 3, 6, 9, 12). */
  layers?: number[];
  /** Weight of the few-shot map: map = zero-shot + weight × few-shot. Default 1. */
  weight?: number;
  /** Whether the image score becomes (score + few-shot maximum) / 2. Default true. */
  imageScore?: boolean;
}

/** What `detector.setReferences` made. */
export interface ReferenceResult {
  /** Reference images in the memory (k). */
  shots: number;
  /** Images that could not be decoded, by their index in the array given, and why. */
  skipped: { index: number; message: string }[];
}

export interface OverlayOptions {
  /** Weight of the heat-map colour, in [0, 1]. Default 0.5 (as `tokenclip detect`). */
  opacity?: number;
  /** Outline the regions where the map is at least this value. Default: none. */
  threshold?: number | null;
  /** Append the labelled colour bar `tokenclip detect` draws. Default true. */
  colorBar?: boolean;
}

/** A model in the browser's cache. */
export interface CachedModel {
  key: string;
  name: string;
  bytes: number;
  /** ISO 8601 date. */
  storedAt: string;
}

/** The `kind` of a {@link TokenclipError}. */
export type ErrorKind =
  | "webgpu-unavailable"
  | "adapter-limits"
  | "memory"
  | "model"
  | "image"
  | "network"
  | "storage"
  | "gpu"
  | "argument";

/** What every promise of this package rejects with (an `Error` with these fields). */
export interface TokenclipError extends Error {
  name: "TokenclipError";
  kind: ErrorKind;
}

/** What `checkWebGpu()` found. */
export interface WebGpuStatus {
  available: boolean;
  /** When available: the adapter's name (or vendor/architecture) and its main limits. */
  adapter?: string;
  limits?: {
    maxStorageBufferBindingSize: number;
    maxBufferSize: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxComputeWorkgroupStorageSize: number;
    maxStorageBuffersPerShaderStage: number;
  };
  /** When not available: why, and what to do. */
  kind?: ErrorKind;
  message?: string;
}
"#;
