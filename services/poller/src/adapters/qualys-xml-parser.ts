import { SaxesParser } from "saxes";
import { throwIfAborted } from "@vulnsub/shared";
import {
  describeSimpleReturn,
  simpleReturnOf,
} from "./qualys-simple-return.ts";
import {
  appendText,
  attachChild,
  createFrame,
  frameValue,
  objectOf,
  textOf,
  type XmlFrame,
  type XmlObject,
} from "./qualys-xml-tree.ts";

/**
 * Streaming reader of one Host List Detection page. It turns each DETECTION
 * into an item with its HOST's fields as soon as the detection's closing tag
 * is read, so only the current host and detection stay in memory. When the
 * document ends it returns the page's WARNING (the next-page URL).
 * Any problem throws QualysPageError: malformed XML, a body that ends or
 * fails before the root element closes, invalid UTF-8, a SIMPLE_RETURN
 * error document or another root element.
 */
export interface DetectionItem {
  /** HOST fields except DETECTION_LIST, as JSON. */
  host: XmlObject;
  detection: XmlObject;
}

export interface DetectionPageTrailer {
  /** RESPONSE/DATETIME, as sent. */
  datetime: string | null;
  warning: {
    code: string | null;
    text: string | null;
    url: string | null;
  } | null;
  hosts: number;
  detections: number;
}

export type PageProblem =
  | "malformed"
  | "truncated"
  | "body_failed"
  | "simple_return"
  | "unexpected_root";

export class QualysPageError extends Error {
  readonly problem: PageProblem;

  constructor(problem: PageProblem, message: string, cause?: unknown) {
    super(message, { cause });
    this.name = "QualysPageError";
    this.problem = problem;
  }
}

/** Largest text of one element (RESULTS are hundreds of KB at most). */
export const MAX_ELEMENT_CHARS = 32 * 1024 * 1024;

const DETECTION_ROOT = "HOST_LIST_VM_DETECTION_OUTPUT";
const SIMPLE_RETURN_ROOT = "SIMPLE_RETURN";
const STREAMED_LISTS = new Set(["HOST_LIST", "DETECTION_LIST"]);

/** Push parser: feed text with write(), then call end() once. */
export function createDetectionPageParser() {
  const parser = new SaxesParser({ position: true });
  const stack: XmlFrame[] = [];
  let items: DetectionItem[] = [];
  let hostSnapshot: XmlObject | null = null;
  let root: XmlObject | null = null;
  let rootName: string | null = null;
  let lastClosed: string | null = null;
  let hosts = 0;
  let detections = 0;

  parser.on("opentag", (tag) => {
    const parent = stack[stack.length - 1];
    if (!parent) checkRoot(tag.name);
    if (tag.name === "DETECTION_LIST" && parent?.name === "HOST") {
      hostSnapshot = frameValue(parent) as XmlObject;
      if (typeof hostSnapshot === "string") hostSnapshot = {};
    }
    stack.push(createFrame(tag.name, tag.attributes as Record<string, string>));
  });
  parser.on("text", (text) => addText(text));
  parser.on("cdata", (text) => addText(text));
  parser.on("closetag", () => closeElement());

  function checkRoot(name: string) {
    rootName = name;
    if (name === DETECTION_ROOT || name === SIMPLE_RETURN_ROOT) return;
    throw new QualysPageError(
      "unexpected_root",
      `unexpected root element ${name} at ${position()} (expected ${DETECTION_ROOT})`,
    );
  }

  // The whitespace between hosts and between detections is dropped, or a
  // large page would pile it up in the list elements.
  function addText(text: string) {
    const top = stack[stack.length - 1];
    if (!top || STREAMED_LISTS.has(top.name)) return;
    appendText(top, text, MAX_ELEMENT_CHARS);
  }

  function closeElement() {
    const frame = stack.pop() as XmlFrame;
    lastClosed = frame.name;
    const parent = stack[stack.length - 1];
    const grandparent = stack[stack.length - 2];

    if (
      frame.name === "DETECTION" &&
      parent?.name === "DETECTION_LIST" &&
      grandparent?.name === "HOST"
    ) {
      detections++;
      const detection = frameValue(frame);
      items.push({
        host: hostSnapshot ?? {},
        detection:
          typeof detection === "string" ? {} : (detection as XmlObject),
      });
      return;
    }
    if (frame.name === "DETECTION_LIST" && parent?.name === "HOST") return;
    if (frame.name === "HOST" && parent?.name === "HOST_LIST") {
      hosts++;
      hostSnapshot = null;
      return;
    }
    const value = frameValue(frame);
    if (parent) attachChild(parent, frame.name, value);
    else root = objectOf(value) ?? {};
  }

  // saxes names neither tag of a mismatched pair; it closes the open one
  // (reported to closeElement) before it fails.
  function elementHint(detail: string): string {
    if (detail.startsWith("unexpected close tag") && lastClosed) {
      return ` where </${lastClosed}> was expected`;
    }
    const open = stack[stack.length - 1]?.name;
    return open && !detail.includes("unclosed tag") ? ` inside ${open}` : "";
  }

  function position() {
    return `line ${parser.line} column ${parser.column + 1}`;
  }

  function run(step: () => void, problem: "malformed" | "truncated") {
    try {
      step();
    } catch (error) {
      if (error instanceof QualysPageError) throw error;
      const message = error instanceof Error ? error.message : String(error);
      const match = /^(\d+):(\d+): ([\s\S]*)$/.exec(message);
      const detail = (match ? (match[3] as string) : message).replace(
        /\.$/,
        "",
      );
      const where = match
        ? `line ${match[1]} column ${Number(match[2]) + 1}`
        : position();
      throw new QualysPageError(
        problem,
        `${problem} XML at ${where}: ${detail}${elementHint(detail)}`,
        error,
      );
    }
  }

  return {
    /** Parses `text` and returns the detections it completed. */
    write(text: string): DetectionItem[] {
      run(() => parser.write(text), "malformed");
      const done = items;
      items = [];
      return done;
    },

    /** Checks the document is complete and returns its trailer. */
    end(): { items: DetectionItem[]; trailer: DetectionPageTrailer } {
      run(() => parser.close(), "truncated");
      const document = root as XmlObject | null;
      if (!document) {
        throw new QualysPageError(
          "truncated",
          "truncated XML: no root element",
        );
      }
      if (rootName === SIMPLE_RETURN_ROOT) {
        throw new QualysPageError(
          "simple_return",
          `vendor error document ${describeSimpleReturn(simpleReturnOf(document))}`,
        );
      }
      return { items, trailer: trailerOf(document, hosts, detections) };
    },
  };
}

/**
 * Reads a page body chunk by chunk and yields the detections each chunk
 * completes; returns the trailer. Never yields after a problem: the chunk
 * in which a problem shows up yields nothing. Cancels the body when the
 * caller stops early or a problem occurs.
 */
export async function* readDetectionPage(
  body: ReadableStream<Uint8Array> | null,
  signal?: AbortSignal,
): AsyncGenerator<DetectionItem[], DetectionPageTrailer> {
  if (!body)
    throw new QualysPageError("truncated", "truncated XML: empty body");
  const parser = createDetectionPageParser();
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const reader: ChunkReader = body.getReader();
  let bytes = 0;
  let collectedAtBytes = 0;
  let finished = false;

  try {
    for (;;) {
      throwIfAborted(signal, "qualys detection page read");
      const chunk = await readChunk(reader, bytes);
      if (chunk.done) break;
      bytes += chunk.value.byteLength;
      const items = parser.write(decode(decoder, chunk.value, bytes, true));
      if (items.length > 0) yield items;
      if (bytes - collectedAtBytes >= GC_INTERVAL_BYTES) {
        collectedAtBytes = bytes;
        collectGarbage();
      }
    }
    const last = parser.write(decode(decoder, new Uint8Array(0), bytes, false));
    const { items, trailer } = parser.end();
    finished = true;
    const rest = [...last, ...items];
    if (rest.length > 0) yield rest;
    return trailer;
  } finally {
    if (!finished) reader.cancel().catch(() => {});
  }
}

/**
 * Page bytes read between forced garbage collections. Parsing keeps only a
 * few MiB live, but Bun's collector let garbage strings grow the poller to
 * 318-444 MiB on 1 GiB pages. On a 295 MiB page a full collection every
 * 8 MiB gave 218 MiB and every 32 MiB 294 MiB, for 17 % more CPU than
 * every 32 MiB (scripts/bench/qualys-xml.ts, 2-core VM, Bun 1.4.5).
 * NOTE: that is still above the 200 MiB goal; every 4 MiB gave 210 MiB
 * for 30 % more CPU.
 */
const GC_INTERVAL_BYTES = 8 * 1024 * 1024;

function collectGarbage() {
  if (typeof Bun !== "undefined") Bun.gc(true);
}

type ChunkResult =
  | { done: true; value?: Uint8Array }
  | { done: false; value: Uint8Array };

interface ChunkReader {
  read(): Promise<ChunkResult>;
  cancel(reason?: unknown): Promise<void>;
}

async function readChunk(
  reader: ChunkReader,
  bytes: number,
): Promise<ChunkResult> {
  try {
    return await reader.read();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new QualysPageError(
      "body_failed",
      `response body failed after ${bytes} bytes: ${message}`,
      error,
    );
  }
}

function decode(
  decoder: TextDecoder,
  bytes: Uint8Array,
  offset: number,
  stream: boolean,
): string {
  try {
    return decoder.decode(bytes, { stream });
  } catch (error) {
    throw new QualysPageError(
      "malformed",
      `malformed XML: invalid UTF-8 in the first ${offset} bytes`,
      error,
    );
  }
}

function trailerOf(
  document: XmlObject,
  hosts: number,
  detections: number,
): DetectionPageTrailer {
  const response = objectOf(document.RESPONSE);
  if (!response) {
    throw new QualysPageError(
      "malformed",
      `malformed XML: ${DETECTION_ROOT} has no RESPONSE`,
    );
  }
  const warning = objectOf(response.WARNING);
  return {
    datetime: textOf(response.DATETIME),
    warning: warning
      ? {
          code: textOf(warning.CODE),
          text: textOf(warning.TEXT),
          url: textOf(warning.URL),
        }
      : null,
    hosts,
    detections,
  };
}
