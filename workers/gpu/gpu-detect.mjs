// @ts-check
/**
 * Which GPUs this machine has, without node-llama-cpp: used before it is installed (bin/auxot-worker-install.mjs
 * picks the llama.cpp build to install) and after (workers/gpu/backend.ts warns when a GPU is present but the worker
 * runs on the CPU). Plain JavaScript with node: imports only, so that Node runs it before any npm install.
 *
 * Sources, cheapest first: `nvidia-smi` (name and memory of NVIDIA GPUs, and proof the driver works), the PCI
 * vendor ids of display devices in /sys/class/drm (NVIDIA 0x10de, AMD 0x1002, Intel 0x8086), and on macOS the
 * Apple-silicon GPU (every arm64 Mac has one; Metal is its API).
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";

/**
 * @typedef {"nvidia" | "amd" | "intel" | "apple"} GpuVendor
 * @typedef {{ vendor: GpuVendor, name: string, memoryBytes?: number, driver: boolean }} DetectedGpu
 *   driver: whether the vendor's driver answered (nvidia-smi ran); false when only the PCI device was seen.
 */

const PCI_VENDORS = /** @type {const} */ ({ "0x10de": "nvidia", "0x1002": "amd", "0x8086": "intel" });

/**
 * Parses `nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits` ("NVIDIA H100 80GB HBM3, 81559").
 * @param {string} text
 * @returns {DetectedGpu[]}
 */
export function parseNvidiaSmi(text) {
  return text.split("\n").map((line) => line.trim()).filter(Boolean).map((line) => {
    const [name, mib] = line.split(",").map((s) => s.trim());
    const memory = Number(mib);
    return {
      vendor: /** @type {GpuVendor} */ ("nvidia"),
      name: name || "NVIDIA GPU",
      ...(Number.isFinite(memory) && memory > 0 ? { memoryBytes: memory * 1024 * 1024 } : {}),
      driver: true,
    };
  });
}

/**
 * Display devices from /sys/class/drm/card* /device/vendor (Linux), as vendors; no names.
 * @param {string} root
 * @returns {GpuVendor[]}
 */
export function pciDisplayVendors(root = "/sys/class/drm") {
  /** @type {GpuVendor[]} */
  const vendors = [];
  let entries = [];
  try {
    entries = readdirSync(root).filter((e) => /^card\d+$/.test(e));
  } catch {
    return vendors;
  }
  for (const card of entries) {
    try {
      const id = readFileSync(`${root}/${card}/device/vendor`, "utf8").trim().toLowerCase();
      const vendor = PCI_VENDORS[/** @type {keyof typeof PCI_VENDORS} */ (id)];
      if (vendor) vendors.push(vendor);
    } catch {
      // a card without a PCI device (virtual display): not a GPU llama.cpp can use
    }
  }
  return vendors;
}

/**
 * The GPUs of this machine (empty when none is found).
 * @param {{ platform?: string, arch?: string, run?: (cmd: string, args: string[]) => string, drmRoot?: string }} [options]
 * @returns {DetectedGpu[]}
 */
export function detectGpus(options = {}) {
  const platform = options.platform ?? process.platform;
  const arch = options.arch ?? process.arch;
  const run = options.run ??
    ((cmd, args) => execFileSync(cmd, args, { encoding: "utf8", timeout: 5_000, stdio: ["ignore", "pipe", "ignore"] }));
  if (platform === "darwin") return arch === "arm64" ? [{ vendor: "apple", name: "Apple GPU", driver: true }] : [];
  if (platform !== "linux" && platform !== "win32") return [];
  /** @type {DetectedGpu[]} */
  let gpus = [];
  try {
    gpus = parseNvidiaSmi(run("nvidia-smi", ["--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]));
  } catch {
    // no NVIDIA driver (or no nvidia-smi): fall through to the PCI ids
  }
  if (platform === "linux") {
    const seen = new Set(gpus.map((g) => g.vendor));
    for (const vendor of pciDisplayVendors(options.drmRoot)) {
      if (seen.has(vendor)) continue;
      seen.add(vendor);
      gpus.push({
        vendor,
        name: `${vendor === "nvidia" ? "NVIDIA" : vendor === "amd" ? "AMD" : "Intel"} GPU`,
        driver: false,
      });
    }
  }
  return gpus;
}

/**
 * Whether the CUDA runtime libraries the CUDA build links against (libcudart and libcublas, CUDA 12 or 13) can be
 * found: in the dynamic linker's cache (`ldconfig -p`) or a /usr/local/cuda* toolkit. Linux only.
 * @param {{ run?: (cmd: string, args: string[]) => string, exists?: (path: string) => boolean }} [options]
 * @returns {boolean}
 */
export function hasCudaRuntime(options = {}) {
  const run = options.run ??
    ((cmd, args) => execFileSync(cmd, args, { encoding: "utf8", timeout: 5_000, stdio: ["ignore", "pipe", "ignore"] }));
  let cache = "";
  for (const ldconfig of ["ldconfig", "/sbin/ldconfig"]) {
    try {
      cache = run(ldconfig, ["-p"]);
      break;
    } catch {
      // try the next path
    }
  }
  const inCache = /libcublas\.so\.1[23]\b/.test(cache) && /libcudart\.so\.1[23]\b/.test(cache);
  if (inCache) return true;
  const exists = options.exists ?? ((path) => {
    try {
      statSync(path);
      return true;
    } catch {
      return false;
    }
  });
  let toolkits = [];
  try {
    toolkits = readdirSync("/usr/local").filter((d) => /^cuda(-1[23](\.\d+)?)?$/.test(d));
  } catch {
    return false;
  }
  return toolkits.some((d) =>
    ["lib64", "lib", "targets/x86_64-linux/lib"].some((lib) =>
      ["12", "13"].some((v) => exists(`/usr/local/${d}/${lib}/libcublas.so.${v}`))
    )
  );
}
