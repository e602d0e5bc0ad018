import type { Random, ServedVersion } from "./common.ts";
import {
  servedVersionOf,
  type QualysDataset,
  type QualysHost,
} from "./qualys-dataset.ts";
import {
  hostSelected,
  selectDetections,
  type DetectionQuery,
} from "./qualys-params.ts";
import {
  hostListCloseXml,
  hostListOpenXml,
  hostXml,
  pageHeadXml,
  pageTailXml,
} from "./qualys-xml.ts";

/** A body fault: reset the connection, end early, or break the XML. */
export type BodyFault = "reset" | "truncate" | "malformed";

export interface DetectionPageInput {
  dataset: QualysDataset;
  query: DetectionQuery;
  /** The request's parameters, repeated in the next-page URL. */
  params: URLSearchParams;
  /** Absolute URL of the detection path on this server, without query. */
  endpointUrl: string;
  origin: string;
  apiVersion: string;
  seed: number;
  datetime: string;
  fault: BodyFault | null;
  faultRandom: Random;
  /** Called with every served version once the whole page was written. */
  onComplete(versions: ServedVersion[]): void;
  /** Called exactly once when the body ends, fails or is cancelled. */
  onFinish(): void;
}

// Hosts are written in chunks of about this size so a page with small
// hosts does not cost one stream read per host.
const TARGET_CHUNK_CHARS = 64 * 1024;

/**
 * Streams one detection page host by host, pulling the next host only when
 * the reader wants more, so a page of any size never sits in memory. The
 * page contains at most `truncationLimit` hosts that have a selected
 * detection; when more remain it ends with WARNING 1980 and a URL whose
 * id_min is the next such host.
 */
export function createDetectionPageStream(
  input: DetectionPageInput,
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const versions: ServedVersion[] = [];
  const hosts = input.dataset.hosts;
  const faultAtHost = input.fault
    ? input.faultRandom.int(0, Math.max(0, input.query.truncationLimit - 1))
    : -1;
  let index = firstHostIndex(hosts, input.query.idMin ?? 0);
  let written = 0;
  let phase: "head" | "hosts" | "done" = "head";
  let faultApplied = false;
  let finished = false;

  const finish = () => {
    if (finished) return;
    finished = true;
    input.onFinish();
  };

  return new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (phase === "head") {
          phase = "hosts";
          const { origin, apiVersion, datetime } = input;
          enqueue(controller, pageHeadXml(origin, apiVersion, datetime));
          return;
        }

        const chunk = nextHostsChunk();
        if (chunk.text !== "") enqueue(controller, chunk.text);
        if (chunk.faulted) {
          endWithFault(controller);
          return;
        }
        if (chunk.text !== "") return;

        // No host left for this page: the tail closes the document.
        writeTail(controller);
      },
      cancel() {
        finish();
      },
    },
    { highWaterMark: 0 },
  );

  function enqueue(
    controller: ReadableStreamDefaultController<Uint8Array>,
    text: string,
  ) {
    controller.enqueue(encoder.encode(text));
  }

  /** Renders hosts up to the chunk size; `faulted` ends the body there. */
  function nextHostsChunk(): { text: string; faulted: boolean } {
    const parts: string[] = [];
    let size = 0;
    while (size < TARGET_CHUNK_CHARS) {
      const next = nextHost();
      if (!next) break;
      let xml = hostXml(next.host, next.detections, {
        showResults: input.query.showResults,
        showQds: input.query.showQds,
        showQdsFactors: input.query.showQdsFactors,
        seed: input.seed,
      });
      if (written === 0) xml = hostListOpenXml() + xml;

      if (written === faultAtHost && input.fault) {
        faultApplied = true;
        const outcome = applyFault(input.fault, xml);
        if (outcome.stop) {
          parts.push(outcome.xml);
          return { text: parts.join(""), faulted: true };
        }
        xml = outcome.xml;
      }

      for (const detection of next.detections) {
        versions.push(servedVersionOf(next.host, detection));
      }
      written++;
      parts.push(xml);
      size += xml.length;
    }
    return { text: parts.join(""), faulted: false };
  }

  // A page shorter than the fault position takes the fault in its tail.
  function writeTail(controller: ReadableStreamDefaultController<Uint8Array>) {
    let tail =
      (written > 0 ? hostListCloseXml() : "") + pageTailXml(nextPageWarning());
    if (input.fault && !faultApplied) {
      const outcome = applyFault(input.fault, tail);
      if (outcome.stop) {
        enqueue(controller, outcome.xml);
        endWithFault(controller);
        return;
      }
      tail = outcome.xml;
    }

    enqueue(controller, tail);
    phase = "done";
    controller.close();
    if (!input.fault) input.onComplete(versions);
    finish();
  }

  function nextHost(): {
    host: QualysHost;
    detections: ReturnType<typeof selectDetections>;
  } | null {
    if (written >= input.query.truncationLimit) return null;
    return findSelectedHost();
  }

  function findSelectedHost() {
    while (index < hosts.length) {
      const host = hosts[index] as QualysHost;
      index++;
      if (!hostSelected(host.id, input.query)) continue;
      const detections = selectDetections(host, input.query);
      // Hosts without a selected detection are left out of the output.
      if (detections.length > 0) return { host, detections };
    }
    return null;
  }

  function nextPageWarning() {
    if (written < input.query.truncationLimit) return null;
    const next = findSelectedHost();
    if (!next) return null;
    const params = new URLSearchParams(input.params);
    params.set("id_min", String(next.host.id));
    return {
      limit: input.query.truncationLimit,
      url: `${input.endpointUrl}?${params.toString()}`,
    };
  }

  function endWithFault(
    controller: ReadableStreamDefaultController<Uint8Array>,
  ) {
    phase = "done";
    if (input.fault === "reset") {
      controller.error(new Error("simulated connection reset"));
    } else {
      controller.close();
    }
    finish();
  }
}

/** Index of the first host whose ID is >= `idMin` (hosts sorted by ID). */
function firstHostIndex(hosts: readonly QualysHost[], idMin: number): number {
  let low = 0;
  let high = hosts.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((hosts[middle] as QualysHost).id < idMin) low = middle + 1;
    else high = middle;
  }
  return low;
}

// Reset and truncate cut the XML in the middle; malformed misspells the
// first closing tag and lets the rest of the page follow.
function applyFault(
  fault: BodyFault,
  xml: string,
): { xml: string; stop: boolean } {
  if (fault === "malformed") {
    return { xml: xml.replace(/<\/([A-Z_]+)>/, "</$1_BROKEN>"), stop: false };
  }
  return {
    xml: xml.slice(0, Math.max(1, Math.floor(xml.length / 2))),
    stop: true,
  };
}
