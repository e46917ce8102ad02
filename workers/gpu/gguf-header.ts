/**
 * Reads the header of a GGUF file (metadata and tensor infos, not the weights) from a local path or from a URL.
 * Over HTTP it asks for growing byte ranges (`Range: bytes=a-b`) until the header parses, so sizing up a 20 GB
 * model on the hub costs a few MB of transfer; it never downloads the file. Returns the hyperparameters the
 * quantization fit needs (workers/gpu/fit.ts) and the total size of the tensors.
 *
 * Format (GGUF v2/v3, little-endian): magic "GGUF", u32 version, u64 tensor count, u64 metadata count, typed
 * metadata, tensor infos (name, dims, ggml type, offset), padding to `general.alignment` (32), tensor data.
 */
import { GGML_TYPE_SIZES, GGUF_FILE_TYPE_NAMES } from "./ggml-types.ts";
import { FileRangeReader, GgufHeaderError, HttpRangeReader, type PrefixReader } from "./gguf-prefix-readers.ts";

export { GgufHeaderError };

/** Metadata value as read; arrays longer than KEPT_ARRAY_LENGTH are summarised (vocabularies, merges). */
export type GgufMetadataValue = number | bigint | boolean | string | GgufMetadataValue[] | GgufArraySummary;

export interface GgufArraySummary {
  readonly kind: "array-summary";
  /** GGUF value type of the elements. */
  readonly elementType: number;
  readonly length: number;
}

export interface GgufTensorInfo {
  name: string;
  /** ggml order: innermost dimension first. */
  dims: number[];
  /** ggml type id and name ("Q4_K", "F16", ...). */
  type: number;
  typeName: string;
  /** Offset within the data section. */
  offset: number;
  bytes: number;
}

export interface GgufHeader {
  version: number;
  metadata: Map<string, GgufMetadataValue>;
  tensors: GgufTensorInfo[];
  /** `general.architecture` ("llama", "qwen3moe", "clip", ...). */
  architecture: string;
  /** Hyperparameters (`{arch}.*`); absent for files that are not language models (vision projectors). */
  blockCount?: number;
  embeddingLength?: number;
  feedForwardLength?: number;
  headCount?: number;
  /** Per-layer arrays are kept as arrays (some architectures vary the KV head count by layer). */
  headCountKv?: number | number[];
  /** Key and value head widths; default embeddingLength / headCount as in llama.cpp. */
  keyLength?: number;
  valueLength?: number;
  /** Same as keyLength: the attention head dimension. */
  headDim?: number;
  /** Trained context length. */
  contextLength?: number;
  vocabSize?: number;
  expertCount?: number;
  expertUsedCount?: number;
  /** `general.file_type` (llama_ftype) and its name ("Q4_K_M"). */
  fileType?: number;
  fileTypeName?: string;
  alignment: number;
  /** Where the data section starts: the header's size including its padding. */
  dataOffset: number;
  /** Sum of all tensors' sizes in this file: the weights it holds. */
  tensorBytes: number;
  /** For split models (`split.*` keys): this file's 0-based index and the number of files. */
  split?: { index: number; count: number; tensorCount?: number };
  /** Bytes read from the source to parse this header. */
  bytesRead: number;
}

export interface ReadGgufHeaderOptions {
  /** Headers for HTTP sources (e.g. `Authorization: Bearer hf_...`). */
  headers?: Record<string, string>;
  /** First read size; doubled (at least) until the header parses. Default 256 KiB. */
  initialBytes?: number;
  /** Refuse headers larger than this. Default 512 MiB. */
  maxHeaderBytes?: number;
  signal?: AbortSignal;
  fetch?: typeof fetch;
}

/** Reads the header of a GGUF file at a local path or an http(s) URL. */
export async function readGgufHeader(source: string | URL, options: ReadGgufHeaderOptions = {}): Promise<GgufHeader> {
  const isUrl = source instanceof URL || /^https?:\/\//i.test(source);
  const reader = isUrl ? new HttpRangeReader(String(source), options) : await FileRangeReader.open(String(source));
  try {
    return await parseGrowing(reader, options, String(source));
  } finally {
    await reader.close();
  }
}

async function parseGrowing(reader: PrefixReader, options: ReadGgufHeaderOptions, label: string): Promise<GgufHeader> {
  const maxHeaderBytes = options.maxHeaderBytes ?? 512 * 1024 * 1024;
  let want = options.initialBytes ?? 256 * 1024;
  for (;;) {
    const bytes = await reader.readPrefix(want);
    try {
      return parseGgufHeader(bytes);
    } catch (err) {
      if (!(err instanceof NeedMoreBytes)) throw err;
      const size = reader.size();
      if (bytes.length < want || (size !== undefined && bytes.length >= size)) {
        throw new GgufHeaderError(`${label}: file ends inside the GGUF header (${bytes.length} bytes)`);
      }
      if (err.required > maxHeaderBytes) {
        throw new GgufHeaderError(`${label}: GGUF header is larger than ${maxHeaderBytes} bytes`);
      }
      // Grow at least 2x so a header with a huge vocabulary takes a handful of requests, not hundreds.
      want = Math.min(Math.max(err.required, want * 2), maxHeaderBytes, size ?? Infinity);
    }
  }
}

/** Thrown by the parser when the buffer ends before the header does; `required` is a lower bound. */
class NeedMoreBytes extends Error {
  constructor(readonly required: number) {
    super(`need at least ${required} bytes`);
  }
}

/** Arrays up to this length are returned in full (per-layer head counts); longer ones only as a summary. */
const KEPT_ARRAY_LENGTH = 4096;

const VALUE_TYPE = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

const FIXED_VALUE_SIZE: Record<number, number> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  10: 8,
  11: 8,
  12: 8,
};

class Cursor {
  private readonly view: DataView;
  private readonly decoder = new TextDecoder();
  offset = 0;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private need(count: number): void {
    if (this.offset + count > this.bytes.length) throw new NeedMoreBytes(this.offset + count);
  }

  u8(): number {
    this.need(1);
    return this.view.getUint8(this.offset++);
  }
  u32(): number {
    this.need(4);
    const value = this.view.getUint32(this.offset, true);
    this.offset += 4;
    return value;
  }
  /** u64 as a number; GGUF counts and sizes stay far below 2^53 in practice. */
  u64(): number {
    const value = this.u64Big();
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufHeaderError(`value ${value} is too large`);
    return Number(value);
  }
  u64Big(): bigint {
    this.need(8);
    const value = this.view.getBigUint64(this.offset, true);
    this.offset += 8;
    return value;
  }
  string(): string {
    const length = this.u64();
    this.need(length);
    const text = this.decoder.decode(this.bytes.subarray(this.offset, this.offset + length));
    this.offset += length;
    return text;
  }
  skip(count: number): void {
    this.need(count);
    this.offset += count;
  }

  value(type: number): GgufMetadataValue {
    switch (type) {
      case VALUE_TYPE.UINT8:
        return this.u8();
      case VALUE_TYPE.INT8:
        this.need(1);
        return this.view.getInt8(this.offset++);
      case VALUE_TYPE.UINT16:
        return this.fixed(2, (at) => this.view.getUint16(at, true));
      case VALUE_TYPE.INT16:
        return this.fixed(2, (at) => this.view.getInt16(at, true));
      case VALUE_TYPE.UINT32:
        return this.u32();
      case VALUE_TYPE.INT32:
        return this.fixed(4, (at) => this.view.getInt32(at, true));
      case VALUE_TYPE.FLOAT32:
        return this.fixed(4, (at) => this.view.getFloat32(at, true));
      case VALUE_TYPE.BOOL:
        return this.u8() !== 0;
      case VALUE_TYPE.STRING:
        return this.string();
      case VALUE_TYPE.UINT64:
        return safeNumber(this.u64Big());
      case VALUE_TYPE.INT64:
        return safeNumber(this.fixed(8, (at) => this.view.getBigInt64(at, true)));
      case VALUE_TYPE.FLOAT64:
        return this.fixed(8, (at) => this.view.getFloat64(at, true));
      case VALUE_TYPE.ARRAY:
        return this.array();
      default:
        throw new GgufHeaderError(`unknown GGUF metadata value type ${type} at byte ${this.offset}`);
    }
  }

  private fixed<T>(size: number, read: (at: number) => T): T {
    this.need(size);
    const value = read(this.offset);
    this.offset += size;
    return value;
  }

  private array(): GgufMetadataValue {
    const elementType = this.u32();
    const length = this.u64();
    if (length > KEPT_ARRAY_LENGTH) {
      const fixedSize = FIXED_VALUE_SIZE[elementType];
      if (fixedSize !== undefined) this.skip(fixedSize * length);
      else for (let i = 0; i < length; i++) this.value(elementType);
      return { kind: "array-summary", elementType, length };
    }
    const items: GgufMetadataValue[] = [];
    for (let i = 0; i < length; i++) items.push(this.value(elementType));
    return items;
  }
}

function safeNumber(value: bigint): number | bigint {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(value) : value;
}

/** Parses a GGUF header from the start of a file; throws NeedMoreBytes (internal) when `bytes` is too short. */
function parseGgufHeader(bytes: Uint8Array): GgufHeader {
  const cursor = new Cursor(bytes);
  const magic = [cursor.u8(), cursor.u8(), cursor.u8(), cursor.u8()];
  if (String.fromCharCode(...magic) !== "GGUF") throw new GgufHeaderError("not a GGUF file (bad magic)");
  const version = cursor.u32();
  if (version === 0x03000000 || version === 0x02000000) {
    throw new GgufHeaderError("big-endian GGUF files are not supported");
  }
  if (version !== 2 && version !== 3) throw new GgufHeaderError(`unsupported GGUF version ${version}`);
  const tensorCount = cursor.u64();
  const metadataCount = cursor.u64();
  const metadata = new Map<string, GgufMetadataValue>();
  for (let i = 0; i < metadataCount; i++) {
    const key = cursor.string();
    metadata.set(key, cursor.value(cursor.u32()));
  }
  const rawTensors: Array<{ name: string; dims: number[]; type: number; offset: number }> = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = cursor.string();
    const dimCount = cursor.u32();
    const dims: number[] = [];
    for (let d = 0; d < dimCount; d++) dims.push(cursor.u64());
    const type = cursor.u32();
    rawTensors.push({ name, dims, type, offset: cursor.u64() });
  }
  const alignment = numberValue(metadata.get("general.alignment")) ?? 32;
  const dataOffset = Math.ceil(cursor.offset / alignment) * alignment;
  const tensors = sizeTensors(rawTensors);
  return describe(version, metadata, tensors, alignment, dataOffset, bytes.length);
}

function sizeTensors(raw: Array<{ name: string; dims: number[]; type: number; offset: number }>): GgufTensorInfo[] {
  const byOffset = [...raw].sort((a, b) => a.offset - b.offset);
  const nextOffset = new Map(byOffset.map((t, i) => [t, byOffset[i + 1]?.offset]));
  return raw.map((tensor) => {
    const known = GGML_TYPE_SIZES[tensor.type];
    const elements = tensor.dims.reduce((product, dim) => product * dim, 1);
    if (known) {
      const [typeName, blockElements, blockBytes] = known;
      if ((tensor.dims[0] ?? 1) % blockElements !== 0) {
        throw new GgufHeaderError(`tensor ${tensor.name}: ${tensor.dims[0]} is not a multiple of ${typeName} blocks`);
      }
      return { ...tensor, typeName, bytes: (elements / blockElements) * blockBytes };
    }
    // A type newer than this table: its size is the gap to the next tensor (alignment padding included).
    const next = nextOffset.get(tensor);
    if (next === undefined) throw new GgufHeaderError(`tensor ${tensor.name}: unknown ggml type ${tensor.type}`);
    return { ...tensor, typeName: `TYPE_${tensor.type}`, bytes: next - tensor.offset };
  });
}

function describe(
  version: number,
  metadata: Map<string, GgufMetadataValue>,
  tensors: GgufTensorInfo[],
  alignment: number,
  dataOffset: number,
  bytesRead: number,
): GgufHeader {
  const architecture = metadata.get("general.architecture");
  if (typeof architecture !== "string") throw new GgufHeaderError("GGUF header has no general.architecture");
  const arch = (key: string) => numberValue(metadata.get(`${architecture}.${key}`));
  const headCount = arch("attention.head_count");
  const embeddingLength = arch("embedding_length");
  const headCountKvRaw = metadata.get(`${architecture}.attention.head_count_kv`);
  const headCountKv = Array.isArray(headCountKvRaw)
    ? headCountKvRaw.map((v) => numberValue(v) ?? 0)
    : numberValue(headCountKvRaw) ?? headCount;
  const defaultHeadDim = headCount && embeddingLength ? embeddingLength / headCount : undefined;
  const keyLength = arch("attention.key_length") ?? defaultHeadDim;
  const valueLength = arch("attention.value_length") ?? defaultHeadDim;
  const tokens = metadata.get("tokenizer.ggml.tokens");
  const vocabSize = arch("vocab_size") ??
    (Array.isArray(tokens) ? tokens.length : isSummary(tokens) ? tokens.length : undefined);
  const fileType = numberValue(metadata.get("general.file_type"));
  const splitCount = numberValue(metadata.get("split.count"));
  const header: GgufHeader = {
    version,
    metadata,
    tensors,
    architecture,
    blockCount: arch("block_count"),
    embeddingLength,
    feedForwardLength: firstNumber(metadata.get(`${architecture}.feed_forward_length`)),
    headCount,
    headCountKv,
    keyLength,
    valueLength,
    headDim: keyLength,
    contextLength: arch("context_length"),
    vocabSize,
    expertCount: arch("expert_count"),
    expertUsedCount: arch("expert_used_count"),
    fileType,
    fileTypeName: fileType === undefined ? undefined : GGUF_FILE_TYPE_NAMES[fileType],
    alignment,
    dataOffset,
    tensorBytes: tensors.reduce((sum, t) => sum + t.bytes, 0),
    bytesRead,
  };
  if (splitCount !== undefined && splitCount > 1) {
    header.split = {
      index: numberValue(metadata.get("split.no")) ?? 0,
      count: splitCount,
      tensorCount: numberValue(metadata.get("split.tensors.count")),
    };
  }
  return header;
}

function isSummary(value: GgufMetadataValue | undefined): value is GgufArraySummary {
  return typeof value === "object" && value !== null && !Array.isArray(value) && value.kind === "array-summary";
}

function numberValue(value: GgufMetadataValue | undefined): number | undefined {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  return undefined;
}

/** Some architectures store a per-layer array where others store one number; the first layer's value stands in. */
function firstNumber(value: GgufMetadataValue | undefined): number | undefined {
  return Array.isArray(value) ? numberValue(value[0]) : numberValue(value);
}
