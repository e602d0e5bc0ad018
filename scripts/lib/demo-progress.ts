// Per-vendor progress of the demo, built from the pollers' JSON log
// events, and its display: redrawn in place on a terminal, periodic lines
// otherwise (CI logs, pipes).
import type { Vendor } from "@vulnsub/shared";
import type { JsonEvent } from "./processes.ts";

export type PollerState =
  | "starting"
  | "standby"
  | "syncing"
  | "synced"
  | "retrying"
  | "stopped";

export interface VendorProgress {
  vendor: Vendor;
  state: PollerState;
  /** Vendor pages fetched: Qualys pages, Rapid7 pages, Tenable chunks. */
  pages: number;
  records: number;
  written: number;
  duplicates: number;
  /**
   * Waits of at least QUOTA_WAIT_MIN_MS for a shared rate-limit permit;
   * shorter ones are the Redis round trip, not the quota.
   */
  quotaWaits: number;
  /** Time spent waiting for permits, every wait included. */
  quotaWaitMs: number;
  /** Throttling responses from the vendor (429, Qualys 409). */
  throttles: number;
  cyclesCompleted: number;
  cyclesFailed: number;
  lastError: string | null;
}

export const QUOTA_WAIT_MIN_MS = 100;

/**
 * Returns true for the poll loop's cycle.completed, logged once the cycle's
 * last batch is acked. It carries `written`; an adapter may log its own
 * cycle.completed earlier, while batches are still in flight.
 */
export function isCycleCompleted(event: JsonEvent): boolean {
  return event.event === "cycle.completed" && typeof event.written === "number";
}

export interface ProgressBoard {
  apply(vendor: Vendor, event: JsonEvent): void;
  get(vendor: Vendor): VendorProgress;
  all(): VendorProgress[];
  /** True once every vendor has completed at least one sync cycle. */
  allSynced(): boolean;
}

export function createProgressBoard(vendors: readonly Vendor[]): ProgressBoard {
  const board = new Map<Vendor, VendorProgress>();
  for (const vendor of vendors) board.set(vendor, emptyProgress(vendor));

  const get = (vendor: Vendor) => {
    const progress = board.get(vendor);
    if (!progress) throw new Error(`no progress for vendor ${vendor}`);
    return progress;
  };

  return {
    apply: (vendor, event) => applyEvent(get(vendor), event),
    get,
    all: () => [...board.values()],
    allSynced: () => [...board.values()].every((p) => p.cyclesCompleted > 0),
  };
}

/** Formats one line per vendor. */
export function formatProgress(
  board: ProgressBoard,
  elapsedMs: number,
): string[] {
  const seconds = Math.round(elapsedMs / 1000);
  return board.all().map((p) => {
    const waitSeconds = (p.quotaWaitMs / 1000).toFixed(1);
    const waits = `${p.quotaWaits} quota waits (${waitSeconds} s)`;
    const throttles = p.throttles > 0 ? `, ${p.throttles} throttled` : "";
    const failed =
      p.cyclesFailed > 0 ? `, ${p.cyclesFailed} cycles failed` : "";
    const error =
      p.state === "retrying" && p.lastError ? ` [${p.lastError}]` : "";
    return (
      `[${String(seconds).padStart(4)} s] ${p.vendor.padEnd(8)}` +
      `${p.state.padEnd(9)} ${p.pages} pages, ${p.written} written, ` +
      `${p.duplicates} duplicates, ${waits}${throttles}${failed}${error}`
    );
  });
}

/** Returns a line for a completed or failed cycle, else undefined. */
export function describeCycleEvent(
  vendor: Vendor,
  event: JsonEvent,
): string | undefined {
  if (isCycleCompleted(event)) {
    const seconds = (numberField(event, "durationMs") / 1000).toFixed(1);
    return (
      `${vendor}: sync cycle completed in ${seconds} s: ` +
      `${event.records ?? "?"} records, ${event.written ?? "?"} written, ` +
      `${event.duplicates ?? "?"} duplicates, ${event.pages ?? "?"} pages`
    );
  }
  if (event.event === "cycle.failed") {
    return `${vendor}: sync cycle failed, retrying: ${describeError(event)}`;
  }
  return undefined;
}

export interface ProgressView {
  /** Prints a line above the live block (or as is, without a terminal). */
  note(line: string): void;
  /** Draws the board now. */
  render(): void;
  stop(): void;
}

/**
 * Shows the board: on a TTY it redraws every `intervalMs` in place; else it
 * prints the board every `lineIntervalMs`.
 */
export function createProgressView(
  board: ProgressBoard,
  options: {
    tty: boolean;
    write: (text: string) => void;
    intervalMs?: number;
    lineIntervalMs?: number;
  },
): ProgressView {
  const startedAt = Date.now();
  const elapsed = () => Date.now() - startedAt;
  let drawnLines = 0;

  const clear = () => {
    if (drawnLines === 0) return;
    options.write(`\x1b[${drawnLines}F\x1b[J`);
    drawnLines = 0;
  };
  const draw = () => {
    const lines = formatProgress(board, elapsed());
    if (!options.tty) {
      options.write(`${lines.join("\n")}\n`);
      return;
    }
    clear();
    options.write(`${lines.join("\n")}\n`);
    drawnLines = lines.length;
  };

  const period = options.tty
    ? (options.intervalMs ?? 500)
    : (options.lineIntervalMs ?? 5_000);
  const timer = setInterval(draw, period);

  return {
    note(line) {
      if (options.tty) clear();
      options.write(`${line}\n`);
      if (options.tty) draw();
    },
    render: draw,
    stop() {
      clearInterval(timer);
      if (options.tty) draw();
    },
  };
}

function emptyProgress(vendor: Vendor): VendorProgress {
  return {
    vendor,
    state: "starting",
    pages: 0,
    records: 0,
    written: 0,
    duplicates: 0,
    quotaWaits: 0,
    quotaWaitMs: 0,
    throttles: 0,
    cyclesCompleted: 0,
    cyclesFailed: 0,
    lastError: null,
  };
}

function applyEvent(p: VendorProgress, event: JsonEvent) {
  switch (event.event) {
    case "lock.waiting":
    case "lock.standby":
      p.state = "standby";
      break;
    case "lock.acquired":
    case "cycle.started":
      p.state = "syncing";
      break;
    case "page.fetched":
      // The poll loop's event carries `records`; an adapter may log its
      // own page.fetched with vendor fields, which is not counted again.
      if (typeof event.records !== "number") break;
      p.pages++;
      p.records += event.records;
      break;
    case "batch.acked":
      p.written += numberField(event, "written");
      p.duplicates += numberField(event, "duplicates");
      break;
    case "ratelimit.waited": {
      const waitMs = numberField(event, "durationMs");
      if (waitMs >= QUOTA_WAIT_MIN_MS) p.quotaWaits++;
      p.quotaWaitMs += waitMs;
      break;
    }
    case "vendor.throttled":
      p.throttles++;
      break;
    case "cycle.completed":
      if (!isCycleCompleted(event)) break;
      p.cyclesCompleted++;
      p.state = "synced";
      break;
    case "cycle.failed":
      p.cyclesFailed++;
      p.state = "retrying";
      p.lastError = describeError(event);
      break;
    case "poller.stopped":
      p.state = "stopped";
      break;
  }
}

function numberField(event: JsonEvent, name: string): number {
  const value = event[name];
  return typeof value === "number" && Number.isFinite(value) ? value : 0;
}

function describeError(event: JsonEvent): string {
  const err = event.err;
  const message =
    typeof err === "object" && err !== null && "message" in err
      ? String((err as { message: unknown }).message)
      : undefined;
  const code = typeof event.code === "string" ? event.code : undefined;
  return [code, message].filter(Boolean).join(": ") || "unknown error";
}
