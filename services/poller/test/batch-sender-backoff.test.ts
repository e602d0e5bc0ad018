// A flusher that takes every stream and fails every batch with
// UNAVAILABLE (its log writes fail) must not be reconnected to in a tight
// loop: the sender backs off until an ack shows progress.
import { afterEach, describe, expect, test } from "bun:test";
import type { JobRef } from "@vulnsub/shared";
import {
  createBatchSender,
  type BatchSender,
} from "../src/batch-sender.ts";
import {
  createFlusherClient,
  type FlusherClient,
} from "../src/flusher-connection.ts";
import { startFakeFlusher, type FakeFlusher } from "./helpers/fake-flusher.ts";
import { createLogCapture, type LogCapture } from "./helpers/log-capture.ts";
import { waitUntil } from "./helpers/wait-until.ts";

const JOB: JobRef = { vendor: "tenable", source: "backoff" };
const RECONNECT_BASE_MS = 100;
const RECONNECT_MAX_MS = 2_000;
const OBSERVE_MS = 5_000;
/** Without backoff a rejecting flusher is reconnected every few ms. */
const MAX_CONNECTS = 15;

let flusher: FakeFlusher | undefined;
let client: FlusherClient | undefined;
let sender: BatchSender | undefined;
let log: LogCapture;

afterEach(async () => {
  sender?.close();
  client?.close();
  await flusher?.stop();
  sender = undefined;
  client = undefined;
  flusher = undefined;
});

async function startRejecting() {
  flusher = await startFakeFlusher();
  flusher.rejectBatches(true);
  client = createFlusherClient(flusher.address);
  log = createLogCapture();
  sender = createBatchSender({
    client,
    job: JOB,
    fencingToken: 1n,
    maxUnackedBatches: 4,
    logger: log.logger,
    signal: new AbortController().signal,
    reconnectBaseMs: RECONNECT_BASE_MS,
    reconnectMaxMs: RECONNECT_MAX_MS,
  });
  await sender.connect();
  const tally = { written: 0, duplicates: 0 };
  const record = { findingKey: "f1", version: "v1", json: "{}" };
  const batch = { records: [record], cursor: "c1", page: 1, endOfPage: true };
  await sender.send(batch, tally);
  return tally;
}

const attempts = (event: string) =>
  log.events(event).map((line) => Number(line.attempt));

describe("batch sender reconnect backoff", () => {
  test("rejecting flusher: connects back off", async () => {
    await startRejecting();

    await Bun.sleep(OBSERVE_MS);
    const connected = attempts("flusher.connected");
    const resent = log
      .events("flusher.connected")
      .slice(1)
      .map((line) => line.resent);

    expect(connected.length).toBeGreaterThan(2);
    expect(connected.length).toBeLessThan(MAX_CONNECTS);
    expect(connected).toEqual([...connected].sort((a, b) => a - b));
    expect(connected.at(-1)).toBeGreaterThan(connected[1] ?? 0);
    expect(resent.every((count) => count === 1)).toBe(true);
  }, 20_000);

  test("rejecting flusher: unavailable is rate-limited", async () => {
    await startRejecting();

    await waitUntil(
      "three reconnects",
      () => log.events("flusher.connected").length >= 4,
    );
    const warned = log.events("flusher.unavailable");

    expect(warned.length).toBe(1);
    expect(warned[0]?.attempt).toBe(1);
    expect(warned[0]?.suppressed).toBe(0);
  }, 20_000);

  test("rejecting flusher: ack after recovery resets", async () => {
    const tally = await startRejecting();
    await waitUntil(
      "two reconnects",
      () => log.events("flusher.connected").length >= 3,
    );

    flusher?.rejectBatches(false);
    await waitUntil("batch acked", () => tally.written === 1);
    await sender?.drain();

    expect(sender?.unacked).toBe(0);
    expect(flusher?.log.length).toBe(1);
    expect(sender?.durableCursor).toBe("c1");
  }, 20_000);
});
