// Flusher restart time: `bun run bench restart [--smoke]`.
//
// Writes a findings log of 1 GiB (smoke: 20 MiB) of 1-5 KB findings. Then
// it times `wc -l` on the log and the flusher from spawn to its
// flusher.serving line: first with no dedup snapshot (a full rebuild from
// the log), then with the snapshot written at the previous graceful stop.
// The page cache is warm for all three, because `wc -l` runs once untimed.
import { mkdtemp, open, rm } from "node:fs/promises";
import { cpus, release, tmpdir } from "node:os";
import { join } from "node:path";

const smoke = process.argv.includes("--smoke");
if (process.argv.slice(2).some((arg) => arg !== "--smoke")) {
  console.error("usage: bun scripts/bench/restart.ts [--smoke]");
  process.exit(2);
}
const LOG_BYTES = smoke ? 20 * 2 ** 20 : 2 ** 30;
const MAIN = join(import.meta.dir, "..", "..", "services", "flusher", "src", "main.ts");

const cpu = cpus()[0]?.model ?? "unknown";
console.log(
  `machine: ${cpu}, ${cpus().length} cores, Linux ${release()}, bun ${Bun.version}` +
    (smoke ? " (smoke run: figures are not meaningful)" : ""),
);

const dir = await mkdtemp(join(tmpdir(), "vulnsub-bench-restart-"));
try {
  const logPath = join(dir, "vulnerabilities.jsonl");
  const lines = await writeLog(logPath, LOG_BYTES);
  console.log(`log: ${(LOG_BYTES / 2 ** 20).toFixed(0)} MiB, ${lines.toLocaleString("en-US")} findings`);

  await timeCommand(["wc", "-l", logPath]);
  const wcMs = await timeCommand(["wc", "-l", logPath]);
  const rebuild = await timeStart(dir);
  const withSnapshot = await timeStart(dir);

  console.log(`wc -l:                 ${wcMs.toFixed(0).padStart(6)} ms`);
  for (const [name, run] of [
    ["no snapshot", rebuild],
    ["with snapshot", withSnapshot],
  ] as const) {
    console.log(
      `${`start, ${name}:`.padEnd(22)} ${run.servingMs.toFixed(0).padStart(6)} ms ` +
        `(${(run.servingMs / wcMs).toFixed(2)} x wc -l), of which recovery ` +
        `${run.recoveryMs} ms (${(run.recoveryMs / wcMs).toFixed(2)} x wc -l)`,
    );
  }
  console.log(
    "start = spawn of `bun services/flusher/src/main.ts` to its flusher.serving " +
      "line; recovery = durationMs of its journal.recovered line; goal <= 1.5",
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}

/** Writes envelope lines until `bytes`; returns the line count. */
async function writeLog(path: string, bytes: number): Promise<number> {
  const handle = await open(path, "w");
  let seed = 7;
  let written = 0;
  let count = 0;
  while (written < bytes) {
    const chunk: string[] = [];
    for (let i = 0; i < 2000; i++, count++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const size = 1000 + Math.floor((seed / 2 ** 31) * 4000);
      const findingKey = `asset:${count % 50_000}|plugin:${count}|port:443|proto:tcp`;
      chunk.push(
        JSON.stringify({
          schemaVersion: 1,
          vendor: "tenable",
          source: "bench",
          findingKey,
          version: count.toString(16).padStart(16, "0"),
          state: "open",
          raw: { plugin_output: "o".repeat(size - 250) },
        }),
      );
    }
    const buffer = Buffer.from(`${chunk.join("\n")}\n`);
    await handle.write(buffer);
    written += buffer.length;
  }
  await handle.sync();
  await handle.close();
  return count;
}

async function timeCommand(command: string[]): Promise<number> {
  const started = performance.now();
  const child = Bun.spawn(command, { stdout: "ignore", stderr: "inherit" });
  const code = await child.exited;
  if (code !== 0) throw new Error(`${command.join(" ")} exited with ${code}`);
  return performance.now() - started;
}

/**
 * Spawns the flusher, times it to flusher.serving, reads the recovery time
 * from its log, and stops it with SIGTERM.
 */
async function timeStart(
  dataDir: string,
): Promise<{ servingMs: number; recoveryMs: number }> {
  const started = performance.now();
  const child = Bun.spawn(["bun", MAIN], {
    env: {
      ...process.env,
      FLUSHER_LISTEN: "127.0.0.1:0",
      DATA_DIR: dataDir,
      METRICS_LISTEN: "off",
      // Keep the snapshot from the previous stop instead of writing a new
      // one in the background while serving.
      SNAPSHOT_INTERVAL_MS: "86400000",
    },
    stdout: "pipe",
    stderr: "inherit",
  });
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let servingMs = -1;
  while (servingMs < 0) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`flusher exited before serving:\n${text}`);
    text += decoder.decode(value, { stream: true });
    if (text.includes('"event":"flusher.serving"')) servingMs = performance.now() - started;
  }
  child.kill("SIGTERM");
  while (!(await reader.read()).done) {}
  const code = await child.exited;
  if (code !== 0) throw new Error(`flusher exited with ${code}:\n${text}`);
  const recovered = /"event":"journal.recovered".*?"durationMs":(\d+)/.exec(text);
  return { servingMs, recoveryMs: Number(recovered?.[1] ?? Number.NaN) };
}
