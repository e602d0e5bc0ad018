import { formatQualysTime } from "./qualys-dataset.ts";
import { describeWait, type QualysLimits } from "./qualys-limits.ts";
import { simpleReturnXml, type SimpleReturnItem } from "./qualys-xml.ts";

/** A call the limits blocked: too many running (1960) or too many recent. */
export type BlockedCall =
  | { admitted: false; code: 1960; callsToFinish: number }
  | { admitted: false; code: 1965; secondsToWait: number };

/**
 * Builds the non-page responses of the simulated Qualys API, each with the
 * limit headers Qualys sends on every response. `origin` is read per
 * response because the server's port is known only once it listens.
 */
export function createQualysResponses(
  origin: () => string,
  limits: QualysLimits,
) {
  function simpleReturn(
    status: number,
    code: number,
    text: string,
    nowMs: number,
    items: SimpleReturnItem[] = [],
    toWaitSec = 0,
  ): Response {
    const datetime = formatQualysTime(nowMs);
    const xml = simpleReturnXml(origin(), datetime, code, text, items);
    return new Response(xml, {
      status,
      headers: {
        "Content-Type": "text/xml;charset=UTF-8",
        ...limits.headers(nowMs, toWaitSec),
      },
    });
  }

  /** HTTP 409 with SIMPLE_RETURN 1960 or 1965, worded like Qualys. */
  function blocked(result: BlockedCall, nowMs: number): Response {
    if (result.code === 1960) {
      const calls = result.callsToFinish;
      const instances =
        calls === 1
          ? "1 currently running API instance has"
          : `${calls} currently running API instances have`;
      return simpleReturn(
        409,
        1960,
        `This API cannot be run again until ${instances} finished.`,
        nowMs,
        [{ key: "CALLS_TO_FINISH", value: String(calls) }],
      );
    }
    const seconds = result.secondsToWait;
    return simpleReturn(
      409,
      1965,
      `This API cannot be run again for another ${describeWait(seconds)}.`,
      nowMs,
      [{ key: "SECONDS_TO_WAIT", value: String(seconds) }],
      seconds,
    );
  }

  // NOTE: the body Qualys sends with a 503 was not found in recorded
  // responses; this is a typical front-end error page.
  function serviceUnavailable(nowMs: number): Response {
    const html =
      "<html><head><title>503 Service Unavailable</title></head>" +
      "<body><h1>Service Unavailable</h1><p>The server is temporarily " +
      "unable to service your request.</p></body></html>\n";
    return new Response(html, {
      status: 503,
      headers: { "Content-Type": "text/html", ...limits.headers(nowMs) },
    });
  }

  return { simpleReturn, blocked, serviceUnavailable };
}
