import type { IncomingMessage, ServerResponse } from "node:http";
import type { SimFinding } from "./tenable-dataset.ts";
import { serializeFinding } from "./tenable-wire.ts";

/**
 * Response writers of the Tenable simulator: JSON bodies, the error shape
 * Tenable's API uses, the nginx 429 page and streamed chunk bodies with
 * the injected body faults.
 */

/** Fault injected into one chunk body, or "none". */
export type ChunkFault = "none" | "slow" | "reset" | "truncate" | "malformed";

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Payload Too Large",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

// The body Tenable's gateway sends with a rate-limit 429, as published in
// the vulns export OpenAPI example (text/html).
const NGINX_429 = `<html>
<head><title>429 Too Many Requests</title></head>
<body bgcolor="white">
<center><h1>429 Too Many Requests</h1></center>
<hr><center>nginx</center>
</body>
</html>
`;

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

/** Sends Tenable's JSON error shape: statusCode, error, message. */
export function sendError(
  res: ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
) {
  const error = STATUS_TEXT[status] ?? "Error";
  sendJson(res, status, { statusCode: status, error, message }, headers);
}

/** Sends the nginx rate-limit page with a retry-after in seconds. */
export function sendRateLimited(
  res: ServerResponse,
  retryAfterSeconds: number,
) {
  res.writeHead(429, {
    "content-type": "text/html",
    "content-length": String(Buffer.byteLength(NGINX_429)),
    "retry-after": String(retryAfterSeconds),
  });
  res.end(NGINX_429);
}

/** Reads a request body of at most `maxBytes`; null when it is larger. */
export async function readRequestBody(
  req: IncomingMessage,
  maxBytes: number,
): Promise<string | null> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of req) {
    const buffer = part as Buffer;
    size += buffer.byteLength;
    if (size > maxBytes) return null;
    parts.push(buffer);
  }
  return Buffer.concat(parts).toString("utf8");
}

/**
 * Streams a chunk as a JSON array, one finding serialized at a time with
 * backpressure, so a chunk with huge outputs is never held in memory
 * whole. Resolves true only when the whole body was written with no fault
 * and the response finished; a client that went away gives false.
 */
export async function streamChunkBody(
  res: ServerResponse,
  findings: readonly SimFinding[],
  options: { fault: ChunkFault; slowMs: number; filename: string },
): Promise<boolean> {
  if (options.fault === "slow") await Bun.sleep(options.slowMs);
  res.writeHead(200, {
    "content-type": "application/octet-stream",
    "content-disposition": `attachment; filename=${options.filename}`,
  });

  // Truncated, reset and malformed bodies break at the middle finding.
  const breakAt = Math.floor(findings.length / 2);
  const broken = options.fault !== "none" && options.fault !== "slow";
  if (!(await write(res, "["))) return false;
  for (let index = 0; index < findings.length; index++) {
    const json = serializeFinding(findings[index] as SimFinding);
    let piece = (index > 0 ? "," : "") + json;
    if (broken && index === breakAt) {
      if (options.fault === "malformed") piece = `}${piece}`;
      else return cutBody(res, piece, options.fault);
    }
    if (!(await write(res, piece))) return false;
  }
  if (broken && findings.length === 0) {
    if (options.fault === "malformed") return endBody(res, "}]", false);
    return cutBody(res, "]", options.fault);
  }
  return endBody(res, "]", !broken);
}

// Writes half of `piece`, then ends the response cleanly (truncate) or
// destroys the socket (reset). Either way the response served nothing.
async function cutBody(
  res: ServerResponse,
  piece: string,
  fault: ChunkFault,
): Promise<boolean> {
  await write(res, piece.slice(0, Math.floor(piece.length / 2)));
  if (fault === "reset") {
    res.destroy();
    return false;
  }
  return endBody(res, "", false);
}

function endBody(res: ServerResponse, tail: string, clean: boolean) {
  return new Promise<boolean>((resolve) => {
    res.once("close", () => resolve(false));
    res.end(tail, () => resolve(clean));
  });
}

// Resolves false when the client went away before the piece was taken.
async function write(res: ServerResponse, piece: string): Promise<boolean> {
  if (res.destroyed) return false;
  if (res.write(piece)) return true;
  await new Promise<void>((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.once("drain", done);
    res.once("close", done);
  });
  return !res.destroyed;
}
