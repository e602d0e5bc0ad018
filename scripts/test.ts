// `npm test`: finds or starts Redis (REDIS_URL for the tests), runs
// `bun test` over packages/, services/ and tests/ with a per-test timeout,
// streams its output, and ends with one line "N passed, N failed" taken
// from bun's own summary. Exits 1 when a test failed, bun test failed, or
// its summary could not be read.
//
//   npm test -- [--filter TEXT]... [--timeout-ms N] [-- bun test args]
// --filter keeps test files whose path contains TEXT (bun test's own path
// filter); arguments after "--" go to bun test unchanged.
import { ensureRedis, RedisNotFoundError } from "./lib/ensure-redis.ts";
import { REPO_DIR } from "./lib/demo-stack.ts";

export interface TestSummary {
  passed: number;
  failed: number;
  skipped: number;
  todo: number;
}

const TEST_ROOTS = ["./packages", "./services", "./tests"];
const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * Reads bun test's closing counts (" 12 pass", " 0 fail", " 1 skip").
 * Returns undefined when the pass or fail count is missing.
 */
export function parseBunTestSummary(output: string): TestSummary | undefined {
  const count = (word: string) => {
    const matches = [
      ...output.matchAll(new RegExp(`^\\s*(\\d+) ${word}\\s*$`, "gm")),
    ];
    const last = matches.at(-1);
    return last ? Number(last[1]) : undefined;
  };
  const passed = count("pass");
  const failed = count("fail");
  if (passed === undefined || failed === undefined) return undefined;
  return {
    passed,
    failed,
    skipped: count("skip") ?? 0,
    todo: count("todo") ?? 0,
  };
}

/** Formats the closing line CI reads: "N passed, N failed[, N skipped]". */
export function formatTestSummary(summary: TestSummary): string {
  const skipped = summary.skipped + summary.todo;
  const tail = skipped > 0 ? `, ${skipped} skipped` : "";
  return `${summary.passed} passed, ${summary.failed} failed${tail}`;
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  if (!args) {
    console.error(
      "usage: npm test -- [--filter TEXT]... [--timeout-ms N] [-- bun test args]",
    );
    return 2;
  }

  let redis;
  try {
    redis = await ensureRedis({ log: (line) => console.error(line) });
  } catch (error) {
    if (!(error instanceof RedisNotFoundError)) throw error;
    console.error(`test: ${error.message}`);
    console.log("0 passed, 1 failed");
    return 1;
  }

  try {
    return await runBunTest(args, redis.url);
  } finally {
    await redis.stop();
  }
}

async function runBunTest(
  args: { filters: string[]; timeoutMs: number; passThrough: string[] },
  redisUrl: string,
): Promise<number> {
  const paths = args.filters.length > 0 ? args.filters : TEST_ROOTS;
  const command = [
    process.execPath,
    "test",
    "--timeout",
    String(args.timeoutMs),
    ...args.passThrough,
    ...paths,
  ];
  console.error(`test: ${command.slice(1).join(" ")}`);

  const child = Bun.spawn(command, {
    cwd: REPO_DIR,
    env: { ...process.env, REDIS_URL: redisUrl },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const stopChild = () => child.kill("SIGTERM");
  process.on("SIGINT", stopChild);
  process.on("SIGTERM", stopChild);

  const [stdout, stderr, exitCode] = await Promise.all([
    pipeThrough(child.stdout, process.stdout),
    pipeThrough(child.stderr, process.stderr),
    child.exited,
  ]);
  process.removeListener("SIGINT", stopChild);
  process.removeListener("SIGTERM", stopChild);

  const summary = parseBunTestSummary(`${stdout}\n${stderr}`);
  if (!summary) {
    console.error(
      `test: could not read the pass and fail counts of bun test (exit ${exitCode})`,
    );
    return 1;
  }
  if (exitCode !== 0 && summary.failed === 0) {
    // bun test failed outside any test, for example an error while loading
    // a file or an unhandled error between tests.
    console.error(
      `test: bun test exited with ${exitCode} although no test failed`,
    );
    summary.failed = 1;
  }
  console.log(formatTestSummary(summary));
  return summary.failed > 0 ? 1 : 0;
}

/** Copies a stream to `target` while it runs and returns its whole text. */
async function pipeThrough(
  stream: ReadableStream<Uint8Array>,
  target: NodeJS.WriteStream,
): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of stream) {
    target.write(chunk);
    text += decoder.decode(chunk, { stream: true });
  }
  return text + decoder.decode();
}

function parseArgs(argv: string[]) {
  const args = {
    filters: [] as string[],
    timeoutMs: DEFAULT_TIMEOUT_MS,
    passThrough: [] as string[],
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      args.passThrough = argv.slice(i + 1);
      break;
    }
    const value = argv[i + 1];
    if (value === undefined) return undefined;
    if (arg === "--filter") args.filters.push(value);
    else if (arg === "--timeout-ms" && /^\d+$/.test(value))
      args.timeoutMs = Number(value);
    else return undefined;
    i++;
  }
  return args;
}
