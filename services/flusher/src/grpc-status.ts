import { status, type StatusObject } from "@grpc/grpc-js";
import { errorCodeOf, type ErrorCode } from "@vulnsub/shared";

/** The gRPC status sent for each error code; anything else is INTERNAL. */
const STATUS_BY_CODE: Partial<Record<ErrorCode, status>> = {
  batch_invalid: status.INVALID_ARGUMENT,
  job_invalid: status.INVALID_ARGUMENT,
  fencing_token_stale: status.FAILED_PRECONDITION,
  // The writer truncated the failed write and accepts batches again (or
  // is failed until restarted): the poller resends after a backoff.
  flusher_unavailable: status.UNAVAILABLE,
  journal_write_failed: status.UNAVAILABLE,
  journal_fsync_failed: status.UNAVAILABLE,
  // The records are durable but the cursor is not; a resend is deduped.
  state_write_failed: status.UNAVAILABLE,
  aborted: status.UNAVAILABLE,
};

export type GrpcError = Pick<StatusObject, "code" | "details">;

/**
 * Maps any error to the gRPC status a caller receives: the status code
 * from the error code, and the error message as details.
 */
export function toGrpcStatus(error: unknown): GrpcError {
  const errorCode = errorCodeOf(error);
  const message = error instanceof Error ? error.message : String(error);
  if (errorCode === "internal") {
    return { code: status.INTERNAL, details: `internal error: ${message}` };
  }
  return { code: STATUS_BY_CODE[errorCode] ?? status.INTERNAL, details: message };
}

/** Returns the name of a status code, for metric labels and logs. */
export function statusName(code: status): string {
  return status[code] ?? String(code);
}
