import type { ServerResponse } from "node:http";
import type { FaultSettings, Random, ServedVersion } from "./common.ts";
import { errorReply, type Reply } from "./rapid7-routes.ts";

/**
 * Fault injection for Rapid7 asset pages. Each eligible response draws a
 * fixed number of values from the fault stream, so the sequence of faults
 * depends only on the seed and the settings. `slow` delays the first byte
 * and combines with the others; at most one of the rest applies:
 * - throttle: 429 with Retry-After: 1;
 * - serverError: 503 with the 5xx body shape of the v4 API;
 * - reset: part of the body, then the connection is destroyed;
 * - truncate: a 200 whose Content-Length matches a cut body (ends cleanly);
 * - malformed: a 200 whose body is not JSON.
 */

export type FaultKind =
  | "none"
  | "throttle"
  | "serverError"
  | "reset"
  | "truncate"
  | "malformed";

export interface FaultDraw {
  kind: FaultKind;
  slow: boolean;
  /** Fraction of the body written before a reset or truncation. */
  cutFraction: number;
  /** Names of the injected faults, for the counters. */
  names: string[];
}

export function drawFault(random: Random, settings: FaultSettings): FaultDraw {
  const slowRoll = random.next();
  const rolls: [FaultKind, number, number][] = [
    ["throttle", random.next(), settings.throttleRate],
    ["serverError", random.next(), settings.serverErrorRate],
    ["reset", random.next(), settings.resetRate],
    ["truncate", random.next(), settings.truncateRate],
    ["malformed", random.next(), settings.malformedRate],
  ];
  const cutFraction = 0.1 + random.next() * 0.8;
  const slow = slowRoll < settings.slowRate;
  const kind = rolls.find(([, roll, rate]) => roll < rate)?.[0] ?? "none";
  const names = [...(slow ? ["slow"] : []), ...(kind === "none" ? [] : [kind])];
  return { kind, slow, cutFraction, names };
}

/**
 * Writes an asset page with its fault and reports the status sent. The
 * page's versions reach `onServed` only when the whole body of a clean
 * 200 was handed to the socket ('finish'), never for a faulty one.
 */
export function createFaultWriter(options: {
  onServed(served: ServedVersion[]): void;
}) {
  return {
    async write(
      res: ServerResponse,
      reply: Reply,
      fault: FaultDraw,
      slowMs: number,
    ): Promise<number> {
      if (fault.slow) await sleep(slowMs);
      if (res.destroyed) return 0;

      if (fault.kind === "throttle") {
        const throttled = errorReply(429, "Too many requests", {
          "Retry-After": "1",
        });
        return writeWhole(
          res,
          throttled.status,
          throttled.body,
          throttled.headers,
        );
      }
      if (fault.kind === "serverError") {
        return writeWhole(res, 503, SERVER_ERROR_BODY);
      }

      const body = Buffer.from(reply.body);
      const cut = Math.max(1, Math.floor(body.byteLength * fault.cutFraction));
      if (fault.kind === "reset") {
        res.writeHead(200, headers(body.byteLength));
        res.write(body.subarray(0, cut), () => res.destroy());
        return 200;
      }
      if (fault.kind === "truncate") {
        return writeWhole(res, 200, body.subarray(0, cut));
      }
      if (fault.kind === "malformed") {
        return writeWhole(res, 200, malform(body, cut));
      }

      res.once("finish", () => options.onServed(reply.served ?? []));
      return writeWhole(res, 200, body);
    },
  };
}

const SERVER_ERROR_BODY = JSON.stringify({
  status: 503,
  localized_message:
    "An unexpected error occurred. Please contact Rapid7 support.",
  message: "An unexpected error occurred. Please contact Rapid7 support.",
});

// A control character is invalid anywhere in JSON text, inside a string
// or between tokens, so the result can never parse.
function malform(body: Buffer, cut: number): Buffer {
  return Buffer.concat([
    body.subarray(0, cut),
    Buffer.from("\u0001<html>Bad Gateway</html>"),
    body.subarray(cut),
  ]);
}

function writeWhole(
  res: ServerResponse,
  status: number,
  body: Buffer | string,
  extraHeaders: Record<string, string> = {},
): number {
  const bytes = typeof body === "string" ? Buffer.from(body) : body;
  res.writeHead(status, { ...headers(bytes.byteLength), ...extraHeaders });
  res.end(bytes);
  return status;
}

function headers(length: number): Record<string, string> {
  return {
    "Content-Type": "application/json;charset=UTF-8",
    "Content-Length": String(length),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
