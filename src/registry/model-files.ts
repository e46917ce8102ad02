/**
 * File-name conventions of GGUF repositories on Hugging Face, shared by the registry scripts and the worker's
 * downloader: split models (`name-00001-of-00003.gguf`, as written by llama.cpp's gguf-split) and the
 * quantization a file holds (`Qwen3.5-35B-A3B-Q4_K_S.gguf`, `UD-Q8_K_XL/...-UD-Q8_K_XL-00001-of-00025.gguf`).
 * Pure string functions: no I/O, safe on every runtime.
 */

const SHARD_PATTERN = /-(\d{5})-of-(\d{5})\.gguf$/i;

export interface ShardName {
  /** 1-based index of this shard. */
  index: number;
  /** Number of shards in the set. */
  count: number;
}

/** The shard index and count encoded in a file name, or undefined for a single-file model. */
export function parseShardName(file: string): ShardName | undefined {
  const match = SHARD_PATTERN.exec(file);
  if (!match) return undefined;
  const index = Number(match[1]);
  const count = Number(match[2]);
  if (index < 1 || count < 1 || index > count) return undefined;
  return { index, count };
}

/** Every file of a model given any one of its files: all shards in order, or just the file itself. */
export function shardFileNames(file: string): string[] {
  const shard = parseShardName(file);
  if (!shard) return [file];
  const width = 5;
  const countText = String(shard.count).padStart(width, "0");
  return Array.from(
    { length: shard.count },
    (_, i) => file.replace(SHARD_PATTERN, `-${String(i + 1).padStart(width, "0")}-of-${countText}.gguf`),
  );
}

/** True for vision projector files (`mmproj-F16.gguf`), which are not models on their own. */
export function isMmprojFile(file: string): boolean {
  return /(^|\/)mmproj[^/]*\.gguf$/i.test(file);
}

// The quantization names llama.cpp's quantize tool writes, plus Unsloth's dynamic "UD-" variants (…_XL).
const QUANT_PATTERN =
  /(?:^|[-_.])((?:UD-)?(?:IQ[1-4]_(?:XXS|XS|S|M|NL)|Q[1-8]_K(?:_(?:S|M|L|XL))?|Q[1-8]_[01]|TQ[12]_0|MXFP4(?:_MOE)?|BF16|F16|F32))$/i;

/**
 * The quantization a GGUF file holds, read from its name (the part before the shard suffix and `.gguf`),
 * upper-cased ("UD-Q8_K_XL", "BF16", "Q4_K_S"); undefined when the name does not say.
 */
export function quantizationFromFileName(file: string): string | undefined {
  const base = file.slice(file.lastIndexOf("/") + 1).replace(SHARD_PATTERN, ".gguf").replace(/\.gguf$/i, "");
  const match = QUANT_PATTERN.exec(base);
  return match ? match[1].toUpperCase() : undefined;
}
