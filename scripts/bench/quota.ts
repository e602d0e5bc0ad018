// Measures how much of a shared rate limit 1, 2, 4 and 8 poller processes
// use together, and whether any rolling window went over it.
//
//   bun run bench quota [--smoke] [--margin-ms N] [--redis-url URL]
//
// Each process loops: rate permit (createRateLimiter, one Redis limit for
// all), then one GET to a loopback HTTP server. The server stamps every
// arrival into createQuotaAuditor. Columns:
// - used: arrivals within [start, start + windows x windowMs) divided by
//   requests x windows.
// - sustained: the same without the first window's burst. It divides the
//   arrivals after the first `requests` by what the limit allows between
//   the first and the last arrival.
// - over: arrivals that made some rolling window exceed the limit.
// - delay: time from the Redis grant to the arrival at the server.
// The limit is compressed (20 requests per 2 s) so a run takes seconds.
// Each process warms up first (one request to /warmup, which is not
// counted, and one permit under a separate key) and the run starts once
// all are ready, so the figures are steady state. Without the warm-up, a
// first request took up to 0.28 s from permit to arrival (4 processes on
// a busy 2-core AMD EPYC VM), more than a 50 ms margin, and windows went
// over. Warm, on loopback, delays stay far below 50 ms, the default here;
// the limiter's own default is 250 ms.
import { cpus } from "node:os";
import { Redis } from "ioredis";
import {
  createLogger,
  createRateLimiter,
  createRedisClient,
  createRedisKeys,
  isVulnsubError,
  parseJobRef,
} from "@vulnsub/shared";
import { createQuotaAuditor } from "@vulnsub/simulators";

const REQUESTS = 20;
const WINDOW_MS = 2000;
const PROCESS_COUNTS = [1, 2, 4, 8];
// Time between "all processes ready" and the start of the run.
const START_DELAY_MS = 500;

interface ChildConfig {
  redisUrl: string;
  prefix: string;
  url: string;
  marginMs: number;
}

interface RunTimes {
  startAtMs: number;
  endAtMs: number;
}

const USAGE =
  "usage: bun run bench quota [--smoke] [--margin-ms N] [--redis-url URL]";

const args = process.argv.slice(2);
if (args[0] === "--child") {
  await runChild(JSON.parse(args[1] ?? "{}") as ChildConfig);
} else {
  await runBench(parseArgs(args));
}

function parseArgs(argv: string[]) {
  const options = {
    smoke: false,
    marginMs: 50,
    redisUrl: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--smoke") options.smoke = true;
    else if (arg === "--margin-ms") options.marginMs = Number(argv[++i]);
    else if (arg === "--redis-url") options.redisUrl = String(argv[++i]);
    else fail(`unknown argument ${JSON.stringify(arg)}\n${USAGE}`);
  }
  if (!Number.isInteger(options.marginMs) || options.marginMs < 0) {
    fail(`invalid --margin-ms: expected an integer >= 0\n${USAGE}`);
  }
  return options;
}

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

async function runBench(options: ReturnType<typeof parseArgs>) {
  const windows = options.smoke ? 2 : 10;
  const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: 1 });
  const info = await redis.info("server").catch((error: unknown) => {
    fail(`redis at ${options.redisUrl}: ${String(error)}`);
  });
  const redisVersion = /redis_version:(\S+)/.exec(info)?.[1] ?? "unknown";
  const cpu = cpus()[0]?.model ?? "unknown";

  console.log(`machine: ${cpu}, ${cpus().length} cores, ` +
    `bun ${Bun.version}, ${process.platform}/${process.arch}, ` +
    `redis ${redisVersion}`);
  console.log(`limit: ${REQUESTS} requests per ${WINDOW_MS} ms, ` +
    `margin ${options.marginMs} ms, ${windows} windows per run`);
  console.log(
    "processes  requests  allowed  used   sustained  max/window  over" +
      "  delay p50/max ms",
  );

  for (const processes of PROCESS_COUNTS) {
    const row = await runOnce(processes, windows, options, redis);
    console.log(
      `${String(processes).padStart(9)}  ${String(row.achieved).padStart(8)}` +
        `  ${String(row.allowed).padStart(7)}  ${row.used.toFixed(3)}` +
        `  ${row.sustained.toFixed(3).padStart(9)}` +
        `  ${String(row.maxInWindow).padStart(10)}` +
        `  ${String(row.over).padStart(4)}` +
        `  ${row.delayP50Ms.toFixed(1)}/${row.delayMaxMs.toFixed(1)}`,
    );
  }
  redis.disconnect();
}

async function runOnce(
  processes: number,
  windows: number,
  options: ReturnType<typeof parseArgs>,
  redis: Redis,
) {
  const auditor = createQuotaAuditor(REQUESTS, WINDOW_MS);
  let startAtMs = Number.POSITIVE_INFINITY;
  let endAtMs = Number.POSITIVE_INFINITY;
  let achieved = 0;
  let firstMs = Number.POSITIVE_INFINITY;
  let lastMs = 0;
  const delaysMs: number[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(request) {
      if (new URL(request.url).pathname === "/warmup") {
        return new Response("ok");
      }
      const arrivalMs = performance.timeOrigin + performance.now();
      auditor.record(arrivalMs);
      // Redis TIME and the server read the same host clock.
      const grantedAtUs = Number(request.headers.get("x-granted-at-us"));
      delaysMs.push(arrivalMs - grantedAtUs / 1000);
      if (arrivalMs >= startAtMs && arrivalMs < endAtMs) {
        achieved++;
        firstMs = Math.min(firstMs, arrivalMs);
        lastMs = Math.max(lastMs, arrivalMs);
      }
      return new Response("ok");
    },
  });

  const prefix = `vulnsub-bench:quota:${process.pid}:${processes}`;
  const config: ChildConfig = {
    redisUrl: options.redisUrl,
    prefix,
    url: `http://127.0.0.1:${server.port}/`,
    marginMs: options.marginMs,
  };
  const children = Array.from({ length: processes }, () =>
    Bun.spawn(["bun", import.meta.path, "--child", JSON.stringify(config)], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "inherit",
      env: { ...process.env, LOG_LEVEL: "warn" },
    }),
  );
  await Promise.all(children.map((child) => readLine(child.stdout)));
  startAtMs = Date.now() + START_DELAY_MS;
  endAtMs = startAtMs + windows * WINDOW_MS;
  const times: RunTimes = { startAtMs, endAtMs };
  for (const child of children) {
    child.stdin.write(`${JSON.stringify(times)}\n`);
    await child.stdin.end();
  }
  const codes = await Promise.all(children.map((child) => child.exited));
  await server.stop(true);
  await deleteKeys(redis, prefix);
  if (codes.some((code) => code !== 0)) {
    fail(`bench quota: a poller process exited with ${codes.join(", ")}`);
  }

  const report = auditor.report();
  delaysMs.sort((a, b) => a - b);
  const percentile = (fraction: number) => {
    const index = Math.floor(fraction * delaysMs.length);
    return delaysMs[Math.min(delaysMs.length - 1, index)] ?? 0;
  };
  const allowed = REQUESTS * windows;
  return {
    achieved,
    allowed,
    used: achieved / allowed,
    // The first window's permits come at once; after it, the limiter
    // sustains `requests` per windowMs + marginMs.
    sustained:
      (achieved - REQUESTS) / ((REQUESTS * (lastMs - firstMs)) / WINDOW_MS),
    maxInWindow: report.maxInWindow,
    over: report.windowsExceeded,
    delayP50Ms: percentile(0.5),
    delayMaxMs: delaysMs.at(-1) ?? 0,
  };
}

async function runChild(config: ChildConfig) {
  const logger = createLogger({ service: "bench-quota" });
  const redis = createRedisClient({ url: config.redisUrl, logger });
  const limiter = createRateLimiter({
    redis,
    keys: createRedisKeys(config.prefix),
    job: parseJobRef("tenable", "bench"),
    requests: REQUESTS,
    windowMs: WINDOW_MS,
    marginMs: config.marginMs,
    logger,
  });
  await warmUp(config, redis, logger);
  console.log("ready");
  const times = JSON.parse(await readLine(Bun.stdin.stream())) as RunTimes;
  await Bun.sleep(Math.max(0, times.startAtMs - Date.now()));
  const signal = AbortSignal.timeout(Math.max(0, times.endAtMs - Date.now()));

  for (;;) {
    let grantedAtUs: number;
    try {
      ({ grantedAtUs } = await limiter.acquire(signal));
    } catch (error) {
      if (isVulnsubError(error) && error.code === "aborted") break;
      throw error;
    }
    const response = await fetch(config.url, {
      headers: { "x-granted-at-us": String(grantedAtUs) },
    });
    await response.text();
  }
  redis.disconnect();
  process.exit(0);
}

async function warmUp(
  config: ChildConfig,
  redis: ReturnType<typeof createRedisClient>,
  logger: ReturnType<typeof createLogger>,
) {
  const warmLimiter = createRateLimiter({
    redis,
    keys: createRedisKeys(`${config.prefix}:warmup:${process.pid}`),
    job: parseJobRef("tenable", "bench"),
    requests: 1,
    windowMs: 1,
    logger,
  });
  await warmLimiter.acquire();
  await (await fetch(new URL("/warmup", config.url))).text();
}

async function readLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  reader.releaseLock();
  return text.split("\n")[0] ?? "";
}

async function deleteKeys(redis: Redis, prefix: string) {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== "0");
}
