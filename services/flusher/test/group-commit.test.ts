import { afterEach, beforeEach, expect, setDefaultTimeout, test } from "bun:test";
import {
  createTempDir,
  makeBatch,
  makeRecord,
  removeDir,
  sendBatches,
  startTestFlusher,
} from "./helpers.ts";

// The group delay is a minute and the test timeout half of that, so a
// batch that waited for the delay fails the test instead of passing late.
setDefaultTimeout(30_000);
const ENV = { FLUSH_MAX_DELAY_MS: "60000", FLUSH_BATCH_SIZE: "500" };

let dataDir: string;
let running: Awaited<ReturnType<typeof startTestFlusher>>;

beforeEach(async () => {
  dataDir = await createTempDir();
  running = await startTestFlusher(dataDir, { env: ENV });
  await running.flusher.ready;
});

afterEach(async () => {
  running.client.close();
  await running.flusher.stop();
  await removeDir(dataDir);
});

test("group commit: lone stream does not wait for the delay", async () => {
  const outcome = await sendBatches(running.client, [
    makeBatch(1, [makeRecord("a")]),
    makeBatch(2, [makeRecord("b")]),
  ]);
  expect(outcome.error).toBeNull();
  expect(outcome.acks.map((ack) => ack.written)).toEqual([1, 1]);
});

test("group commit: commits once every stream waits", async () => {
  const outcomes = await Promise.all(
    ["a", "b", "c"].map((key) =>
      sendBatches(running.client, [makeBatch(1, [makeRecord(key)])]),
    ),
  );
  expect(outcomes.map((o) => o.error)).toEqual([null, null, null]);
  expect(outcomes.map((o) => o.acks.length)).toEqual([1, 1, 1]);
});
