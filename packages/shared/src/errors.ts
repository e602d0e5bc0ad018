/**
 * The error family shared by every vulnsub process. Each class carries a
 * stable snake_case `code` that logs, metrics and gRPC status mapping use,
 * typed context fields, and the original error as `cause`.
 */
export type ErrorCode =
  | "config_invalid"
  | "job_invalid"
  | "rate_limited"
  | "vendor_paused"
  | "vendor_http_status"
  | "vendor_response_invalid"
  | "vendor_request_failed"
  | "vendor_export_failed"
  | "lock_lost"
  | "lock_unavailable"
  | "fencing_token_stale"
  | "redis_unavailable"
  | "batch_invalid"
  | "journal_write_failed"
  | "journal_fsync_failed"
  | "journal_corrupt"
  | "state_file_invalid"
  | "state_write_failed"
  | "flusher_unavailable"
  | "aborted";

export class VulnsubError extends Error {
  readonly code: ErrorCode;
  readonly context: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; context?: Record<string, unknown> } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "VulnsubError";
    this.code = code;
    this.context = Object.freeze({ ...options.context });
  }
}

/** Configuration failed validation; `issues` lists every bad field. */
export class ConfigError extends VulnsubError {
  readonly issues: readonly string[];

  constructor(issues: readonly string[]) {
    super(
      "config_invalid",
      `invalid configuration:\n  ${issues.join("\n  ")}`,
    );
    this.name = "ConfigError";
    this.issues = issues;
  }
}

/** A vendor returned an HTTP status the caller does not retry. */
export class VendorHttpError extends VulnsubError {
  readonly status: number;

  constructor(
    message: string,
    status: number,
    context: Record<string, unknown> = {},
  ) {
    super("vendor_http_status", message, { context: { ...context, status } });
    this.name = "VendorHttpError";
    this.status = status;
  }
}

/** An operation stopped because its AbortSignal fired. */
export class AbortedError extends VulnsubError {
  constructor(what: string, cause?: unknown) {
    super("aborted", `${what}: aborted`, { cause });
    this.name = "AbortedError";
  }
}

export function isVulnsubError(value: unknown): value is VulnsubError {
  return value instanceof VulnsubError;
}

/** Returns the error code of any thrown value, "internal" for foreign ones. */
export function errorCodeOf(value: unknown): ErrorCode | "internal" {
  return isVulnsubError(value) ? value.code : "internal";
}

/**
 * Throws AbortedError when the signal has fired. Call it between steps of a
 * long operation so cancellation takes effect at a safe point.
 */
export function throwIfAborted(signal: AbortSignal | undefined, what: string) {
  if (signal?.aborted) throw new AbortedError(what, signal.reason);
}
