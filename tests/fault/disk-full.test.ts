// Disk full: the flusher (a real child process) writes its findings log on
// a 2 MiB tmpfs that a filler file has almost filled. Batches are streamed
// until a write fails with ENOSPC; then the filler is removed and the same
// batch is sent again. Needs root (mount); skipped with a message without.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  mkdtempSync,
  readFileSync,
  rmSync,
  statfsSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  createIngestClient,
  type IngestClient,
  type PageBatchInit,
} from "@vulnsub/shared";
import { spawnService, type ServiceProcess } from "../../scripts/lib/processes.ts";
import { verifyLog } from "../../scripts/verify-log.ts";

const REPO_DIR = resolve(import.meta.dir, "../..");
const JOB = { vendor: "tenable", source: "diskfull" } as const;
const FENCING_TOKEN = 1n;
const RECORDS_PER_BATCH = 10;
/** Free space left beside the filler: room for a few batches only. */
const HEADROOM_BYTES = 160 * 1024;
const MAX_BATCHES = 200;
const ACK_TIMEOUT_MS = 15_000;
/** gRPC status UNAVAILABLE, which the flusher returns for a failed write. */
const GRPC_UNAVAILABLE = 14;

/** The fields of a grpc-js StreamError this test reads. */
interface StreamError {
  code: number;
  details: string;
}

const mountDir = mkdtempSync(join(tmpdir(), "vulnsub-disk-full-"));
const mounted = mountTmpfs(mountDir, "2m");
if (!mounted.ok) {
  console.warn(`disk-full tests skipped: cannot mount tmpfs (${mounted.reason})`);
}

const dataDir = join(mountDir, "data");
const logPath = join(dataDir, "vulnerabilities.jsonl");
const fillerPath = join(mountDir, "filler.bin");
let flusher: ServiceProcess | undefined;
let client: IngestClient | undefined;
/** Records of every acked batch, by "findingKey version". */
const acked = new Set<string>();
let failedBatch: PageBatchInit | undefined;
let failure: StreamError | undefined;
let recordCounter = 0;

beforeAll(async () => {
  if (!mounted.ok) return;
  flusher = spawnService({
    name: "flusher",
    command: [process.execPath, "run", "services/flusher"],
    cwd: REPO_DIR,
    env: {
      ...process.env,
      FLUSHER_LISTEN: "127.0.0.1:0",
      DATA_DIR: dataDir,
      METRICS_LISTEN: "off",
      FLUSH_BATCH_SIZE: String(RECORDS_PER_BATCH),
      LOG_LEVEL: "info",
    },
  });
  const serving = await flusher.waitForEvent((e) => e.event === "flusher.serving", 30_000);
  client = createIngestClient(String(serving.address));
  await client.getJobState({ job: JOB, fencingToken: FENCING_TOKEN });
  fillTmpfs(mountDir, fillerPath, HEADROOM_BYTES);
});

afterAll(async () => {
  client?.close();
  await flusher?.stop(10_000);
  if (mounted.ok) Bun.spawnSync(["umount", mountDir]);
  rmSync(mountDir, { recursive: true, force: true });
});

describe.skipIf(!mounted.ok)("flusher on a full disk", () => {
  test("ENOSPC batch gets no ack", async () => {
    const stream = openStream(client!);
    for (let seq = 1; seq <= MAX_BATCHES && !failure; seq++) {
      const batch = makeBatch(BigInt(seq));
      const outcome = await stream.send(batch);
      if (outcome.kind === "acked") remember(batch);
      else {
        failedBatch = batch;
        failure = outcome.error;
      }
    }
    stream.close();

    expect(failure).toBeDefined();
    expect(failure?.code).toBe(GRPC_UNAVAILABLE);
    expect(failure?.details).toMatch(/ENOSPC|no space/i);
    expect(acked.size).toBeGreaterThan(0);
    expect(flusher!.isRunning()).toBe(true);
  }, 60_000);

  test("log holds only whole lines", async () => {
    const result = await verifyLog({ logPath });
    const text = readFileSync(logPath, "utf8");

    expect(result.tornTail).toBe(false);
    expect(result.invalid.count).toBe(0);
    expect(text.length === 0 || text.endsWith("\n")).toBe(true);
  });

  test("acks again after space is freed", async () => {
    rmSync(fillerPath);
    await client!.getJobState({ job: JOB, fencingToken: FENCING_TOKEN });
    const stream = openStream(client!);
    const resent = { ...failedBatch!, seq: 1n };
    const first = await stream.send(resent);
    const next = makeBatch(2n);
    const second = await stream.send(next);
    stream.close();

    expect(first.kind).toBe("acked");
    expect(second.kind).toBe("acked");
    if (first.kind === "acked") remember(resent);
    if (second.kind === "acked") remember(next);
  }, 60_000);

  test("every acked record once", async () => {
    const counts = countIdentities(readFileSync(logPath, "utf8"));
    const missing = [...acked].filter((identity) => !counts.has(identity));
    const repeated = [...counts].filter(([, count]) => count > 1);

    expect(missing).toEqual([]);
    expect(repeated).toEqual([]);
    expect(counts.size).toBe(acked.size);
  });
});

type SendOutcome = { kind: "acked" } | { kind: "failed"; error: StreamError };

/** Opens a Stream call that sends one batch at a time and awaits its reply. */
function openStream(ingest: IngestClient) {
  const call = ingest.stream();
  let waiter: ((outcome: SendOutcome) => void) | undefined;
  let ended: StreamError | undefined;
  call.on("data", () => waiter?.({ kind: "acked" }));
  call.on("error", (error: StreamError) => {
    ended = error;
    waiter?.({ kind: "failed", error });
  });

  return {
    send(batch: PageBatchInit): Promise<SendOutcome> {
      if (ended) return Promise.resolve({ kind: "failed", error: ended });
      return new Promise((resolvePromise, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`batch seq ${batch.seq}: no answer in ${ACK_TIMEOUT_MS} ms`)),
          ACK_TIMEOUT_MS,
        );
        waiter = (outcome) => {
          clearTimeout(timer);
          waiter = undefined;
          resolvePromise(outcome);
        };
        call.write(batch);
      });
    },
    close: () => call.end(),
  };
}

function makeBatch(seq: bigint): PageBatchInit {
  const records = Array.from({ length: RECORDS_PER_BATCH }, () => {
    recordCounter++;
    const findingKey = `fid:${recordCounter}`;
    const version = recordCounter.toString(16).padStart(16, "0");
    return { findingKey, version, json: JSON.stringify(makeEnvelope(findingKey, version)) };
  });
  return { job: JOB, fencingToken: FENCING_TOKEN, seq, records, cursor: `{"seq":${seq}}` };
}

/** Builds a schema-valid log line of about 2 KB. */
function makeEnvelope(findingKey: string, version: string) {
  return {
    schemaVersion: 1,
    ...JOB,
    findingKey,
    version,
    observedAt: "2026-01-01T00:00:00.000Z",
    asset: { id: "asset-1", hostname: null, fqdn: null, ipv4: [], ipv6: [] },
    vulnerability: { id: "19506", title: null, cves: [], severity: "low", vendorSeverity: "1" },
    state: "open",
    vendorState: "OPEN",
    firstSeen: null,
    lastSeen: null,
    lastFixed: null,
    port: null,
    protocol: null,
    raw: { output: "x".repeat(2_000) },
  };
}

function remember(batch: PageBatchInit) {
  for (const record of batch.records ?? []) {
    acked.add(`${record.findingKey} ${record.version}`);
  }
}

function countIdentities(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line) continue;
    const { findingKey, version } = JSON.parse(line) as Record<string, string>;
    const identity = `${findingKey} ${version}`;
    counts.set(identity, (counts.get(identity) ?? 0) + 1);
  }
  return counts;
}

function mountTmpfs(dir: string, size: string): { ok: true } | { ok: false; reason: string } {
  if (process.platform !== "linux") return { ok: false, reason: "not Linux" };
  const result = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], {
    stderr: "pipe",
  });
  if (result.exitCode === 0) return { ok: true };
  const stderr = result.stderr.toString().trim();
  return { ok: false, reason: stderr || `mount exited with ${result.exitCode}` };
}

/** Writes a filler file that leaves about `headroomBytes` free. */
function fillTmpfs(dir: string, path: string, headroomBytes: number) {
  const stats = statfsSync(dir);
  const freeBytes = stats.bavail * stats.bsize;
  writeFileSync(path, Buffer.alloc(Math.max(0, freeBytes - headroomBytes)));
}
