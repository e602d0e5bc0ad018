import {
  afterEach,
  beforeEach,
  describe,
  expect,
  setDefaultTimeout,
  test,
} from "bun:test";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { openJournalFile, type JournalFile } from "../src/journal-file.ts";
import {
  createTempDir,
  makeBatch,
  makeRecord,
  removeDir,
  sendBatches,
  startTestFlusher,
} from "./helpers.ts";

// Real processes, servers and fsyncs on a shared machine can be slow.
setDefaultTimeout(30_000);

/** A journal file whose next operations can be made to fail or wait. */
interface FaultPlan {
  failSyncs: number;
  failTruncates: number;
  /** Bytes written before the next write fails with ENOSPC (-1: none). */
  failWriteAfterBytes: number;
  /** When set, each datasync waits for this promise. */
  syncGate: Promise<void> | null;
  syncCalls: number;
  onSync: (() => void) | null;
}

function ioError(code: string, call: string) {
  return Object.assign(new Error(`${code}: i/o error, ${call}`), { code });
}

function faultyFile(real: JournalFile, plan: FaultPlan): JournalFile {
  return {
    async write(bytes, position) {
      if (plan.failWriteAfterBytes >= 0) {
        const partial = Math.min(plan.failWriteAfterBytes, bytes.length);
        plan.failWriteAfterBytes = -1;
        if (partial > 0) await real.write(bytes.subarray(0, partial), position);
        throw ioError("ENOSPC", "write");
      }
      return real.write(bytes, position);
    },
    async datasync() {
      plan.syncCalls++;
      plan.onSync?.();
      if (plan.syncGate) await plan.syncGate;
      if (plan.failSyncs > 0) {
        plan.failSyncs--;
        throw ioError("EIO", "fdatasync");
      }
      return real.datasync();
    },
    async truncate(lengthBytes) {
      if (plan.failTruncates > 0) {
        plan.failTruncates--;
        throw ioError("EIO", "ftruncate");
      }
      return real.truncate(lengthBytes);
    },
    close: () => real.close(),
  };
}

let dataDir: string;
let plan: FaultPlan;
let running: Awaited<ReturnType<typeof startTestFlusher>>;

beforeEach(async () => {
  dataDir = await createTempDir();
  plan = {
    failSyncs: 0,
    failTruncates: 0,
    failWriteAfterBytes: -1,
    syncGate: null,
    syncCalls: 0,
    onSync: null,
  };
  running = await startTestFlusher(dataDir, {
    openFile: async (path) => faultyFile(await openJournalFile(path), plan),
  });
  await running.flusher.ready;
});

afterEach(async () => {
  running.client.close();
  await running.flusher.stop();
  await removeDir(dataDir);
});

/** Waits (bounded) until the in-memory log has a line with `event`. */
async function waitForEvent(event: string): Promise<void> {
  for (let i = 0; i < 200 && !running.events().includes(event); i++) {
    await Bun.sleep(10);
  }
  expect(running.events()).toContain(event);
}

const readLog = () => readFile(join(dataDir, "vulnerabilities.jsonl"), "utf8");

describe("journal write failures", () => {
  test("no ack before fsync returns", async () => {
    let release!: () => void;
    plan.syncGate = new Promise((resolve) => {
      release = resolve;
    });
    const syncStarted = new Promise<void>((resolve) => {
      plan.onSync = resolve;
    });
    const acks: bigint[] = [];
    const call = running.client.stream();
    call.on("data", (ack: { seq: bigint }) => acks.push(ack.seq));
    const ended = new Promise((resolve) => call.on("end", resolve));
    call.write(makeBatch(1, [makeRecord("a")]));

    await syncStarted;
    await Bun.sleep(20);
    const acksWhileSyncing = acks.length;
    release();
    call.end();
    await ended;
    expect(acksWhileSyncing).toBe(0);
    expect(acks).toEqual([1n]);
  });

  test("fsync failure rejects and truncates", async () => {
    await sendBatches(running.client, [makeBatch(1, [makeRecord("kept")])]);
    const before = await readLog();
    plan.failSyncs = 1;

    const failed = await sendBatches(running.client, [
      makeBatch(1, [makeRecord("lost-1"), makeRecord("lost-2")], { cursor: "c-lost" }),
    ]);
    expect(failed.acks).toHaveLength(0);
    expect(failed.error?.code).toBe(status.UNAVAILABLE);
    expect(failed.error?.details).toContain("fsync failed");
    expect(failed.error?.details).toContain("EIO");
    expect(await readLog()).toBe(before);
    const state = await running.client.getJobState({ job: { vendor: "qualys", source: "default" } });
    expect(state.cursor).toBe("");
    expect(state.writtenTotal).toBe(1n);
  });

  test("resend after failure is written", async () => {
    plan.failSyncs = 1;
    const batch = makeBatch(1, [makeRecord("a"), makeRecord("b")], { cursor: "c1" });
    const failed = await sendBatches(running.client, [batch]);
    await waitForEvent("journal.truncated");
    const resent = await sendBatches(running.client, [batch]);
    expect(failed.error?.code).toBe(status.UNAVAILABLE);
    expect(resent.error).toBeNull();
    expect(resent.acks[0]?.written).toBe(2);
    expect(resent.acks[0]?.duplicates).toBe(0);
    expect((await readLog()).split("\n").filter(Boolean)).toHaveLength(2);
  });

  test("partial write leaves no torn line", async () => {
    await sendBatches(running.client, [makeBatch(1, [makeRecord("kept")])]);
    const before = await readLog();
    plan.failWriteAfterBytes = 37;
    const failed = await sendBatches(running.client, [makeBatch(1, [makeRecord("torn")])]);
    expect(failed.error?.code).toBe(status.UNAVAILABLE);
    expect(failed.error?.details).toContain("ENOSPC");
    expect(await readLog()).toBe(before);
  });

  test("failed truncate rejects until restart", async () => {
    plan.failSyncs = 1;
    plan.failTruncates = 1;
    const failed = await sendBatches(running.client, [makeBatch(1, [makeRecord("a")])]);
    const later = await sendBatches(running.client, [makeBatch(1, [makeRecord("b")])]);
    expect(failed.error?.code).toBe(status.UNAVAILABLE);
    expect(later.error?.code).toBe(status.UNAVAILABLE);
    expect(later.error?.details).toContain("restart the flusher");
    expect(running.events()).toContain("journal.failed");
  });

  test("failure rejects every stream in the group", async () => {
    plan.failSyncs = 1;
    const [first, second] = await Promise.all([
      sendBatches(running.client, [makeBatch(1, [makeRecord("a")])]),
      sendBatches(running.client, [makeBatch(1, [makeRecord("b")])]),
    ]);
    const codes = [first.error?.code, second.error?.code];
    // Both batches land in one group (20 ms max delay) or the second is
    // queued behind the failed one; either way neither is acked.
    expect(first.acks.length + second.acks.length).toBeLessThanOrEqual(1);
    expect(codes).toContain(status.UNAVAILABLE);
  });
});
