/**
 * One error type for the whole router. Handlers throw `ApiError`; each API flavour renders it in its own wire
 * shape (OpenAI: {error:{message,type,param,code}}, Anthropic: {type:"error",error:{type,message}}). An
 * unexpected error never reaches a client with its message: it becomes a generic 500.
 */

/** The error kinds the router produces; each flavour maps them to its own `type` strings. */
export type ErrorKind =
  | "invalid_request" // 400
  | "authentication" // 401
  | "permission" // 403
  | "not_found" // 404
  | "payload_too_large" // 413
  | "rate_limit" // 429
  | "not_implemented" // 501
  | "api_error" // 500
  | "overloaded" // 503 (OpenAI) / 529 (Anthropic)
  | "timeout"; // 504

export class ApiError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly options: {
      param?: string;
      code?: string;
      retryAfterSeconds?: number;
      status?: number;
      /** 405: the methods the path does answer (the `Allow` header). */
      allow?: string[];
    } = {},
  ) {
    super(message);
    this.name = "ApiError";
  }

  get status(): number {
    return this.options.status ?? STATUS[this.kind];
  }
}

const STATUS: Record<ErrorKind, number> = {
  invalid_request: 400,
  authentication: 401,
  permission: 403,
  not_found: 404,
  payload_too_large: 413,
  rate_limit: 429,
  not_implemented: 501,
  api_error: 500,
  overloaded: 503,
  timeout: 504,
};

/** Turns anything thrown into an ApiError; unknown errors lose their message (it may hold internals). */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  return new ApiError("api_error", "Internal server error");
}
