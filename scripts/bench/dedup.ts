// Dedup index memory and speed: `bun run bench dedup [--smoke]`.
//
// Builds the index with 1,000,000 and 5,000,000 keys (smoke: 10,000 and
// 50,000). Prints bytes per key, from the table size and from heap growth,
// and inserts per second. Then prints lookups per second for present and
// absent keys, and for lookups that also compute the fingerprint.
import { cpus, release } from "node:os";
import { createDedupIndex } from "../../services/flusher/src/dedup-index.ts";
import {
  fingerprintOf,
  type Fingerprint,
} from "../../services/flusher/src/finding-identity.ts";

const smoke = process.argv.includes("--smoke");
if (process.argv.slice(2).some((arg) => arg !== "--smoke")) {
  console.error("usage: bun scripts/bench/dedup.ts [--smoke]");
  process.exit(2);
}
const SIZES = smoke ? [10_000, 50_000] : [1_000_000, 5_000_000];
const LOOKUPS = smoke ? 20_000 : 2_000_000;

const cpu = cpus()[0]?.model ?? "unknown";
console.log(
  `machine: ${cpu}, ${cpus().length} cores, Linux ${release()}, bun ${Bun.version}` +
    (smoke ? " (smoke run: figures are not meaningful)" : ""),
);
console.log(
  "keys        table B/key  heap B/key  inserts/s   lookups/s hit  lookups/s miss  hash+lookup/s",
);

for (const keys of SIZES) {
  const fingerprints = makeFingerprints(keys, "present");
  const absent = makeFingerprints(LOOKUPS, "absent");
  Bun.gc(true);
  const heapBefore = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;

  const index = createDedupIndex();
  const started = performance.now();
  for (let i = 0; i < keys; i++) index.add(fingerprints[i] as Fingerprint);
  const insertsPerSecond = keys / ((performance.now() - started) / 1000);

  Bun.gc(true);
  const heapAfter = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
  const hits = rate(LOOKUPS, (i) => index.has(fingerprints[(i * 7919) % keys] as Fingerprint));
  const misses = rate(LOOKUPS, (i) => index.has(absent[i] as Fingerprint));
  const hashed = rate(Math.min(LOOKUPS, 500_000), (i) =>
    index.has(
      fingerprintOf({
        vendor: "tenable",
        source: "default",
        findingKey: `asset:${i % 100_000}|plugin:${i}|port:443|proto:tcp`,
        version: "0123456789abcdef",
      }),
    ),
  );

  console.log(
    `${keys.toLocaleString("en-US").padEnd(10)}  ${(index.byteLength / keys).toFixed(1).padStart(11)}  ` +
      `${((heapAfter - heapBefore) / keys).toFixed(1).padStart(10)}  ` +
      `${fmt(insertsPerSecond, 9)}  ${fmt(hits, 13)}  ${fmt(misses, 14)}  ${fmt(hashed, 13)}`,
  );
}
console.log("goal: <= 24 bytes per key at 5,000,000 keys");

function fmt(value: number, width: number): string {
  return Math.round(value).toLocaleString("en-US").padStart(width);
}

function rate(count: number, step: (i: number) => boolean): number {
  let found = 0;
  const started = performance.now();
  for (let i = 0; i < count; i++) if (step(i)) found++;
  const seconds = (performance.now() - started) / 1000;
  // `found` keeps the loop from being optimised away.
  if (found < 0) console.log(found);
  return count / seconds;
}

/** Fingerprints of realistic identities, computed before timing. */
function makeFingerprints(count: number, prefix: string): Fingerprint[] {
  return Array.from({ length: count }, (_, i) =>
    fingerprintOf({
      vendor: "qualys",
      source: "default",
      findingKey: `host:${prefix}-${i % 200_000}|qid:${i}|port:443|proto:tcp|ssl:1`,
      version: (i * 2654435761).toString(16).padStart(16, "0").slice(-16),
    }),
  );
}
