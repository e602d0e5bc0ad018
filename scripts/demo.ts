// `npm run demo`: the whole pipeline on loopback against the vendor
// simulators. It starts Redis (or uses a running one), one simulator per
// vendor, the flusher and one poller per vendor, and shows live progress.
// It stops once every vendor has completed a full sync, or with --follow
// keeps polling until Ctrl-C. Then it prints a summary and checks the
// findings log against what the simulators served, and exits 1 when the
// check fails.
import { mkdirSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import {
  formatHelp,
  loadConfig,
  parseBoolean,
  parseInteger,
  parseString,
  VENDORS,
  type OptionSpecs,
  type Vendor,
} from "@vulnsub/shared";
import { REPO_DIR } from "./lib/demo-stack.ts";
import { runDemo } from "./lib/demo-run.ts";
import { ensureRedis, RedisNotFoundError } from "./lib/ensure-redis.ts";

// Defaults: about 8,500 finding versions in 7-13 pages per vendor, and a
// quota compressed to 10 requests per 10 s, so each poller waits for the
// next window at least once. A default run took 18-20 s on a 2-core
// machine (measured twice, 5 s of it process start-up).
const specs = {
  follow: {
    key: "follow",
    env: "DEMO_FOLLOW",
    flag: "follow",
    default: false,
    description: "keep polling after the first full sync, until Ctrl-C",
    parse: parseBoolean,
  },
  vendors: {
    key: "vendors",
    env: "DEMO_VENDORS",
    flag: "vendors",
    default: [...VENDORS] as Vendor[],
    description: "comma-separated vendors to run",
    parse: parseVendorList,
  },
  seed: {
    key: "seed",
    env: "DEMO_SEED",
    flag: "seed",
    default: 1,
    description: "seed of the simulated datasets",
    parse: parseInteger(0, 2 ** 32 - 1),
  },
  assets: {
    key: "assets",
    env: "DEMO_ASSETS",
    flag: "assets",
    default: 300,
    description: "assets per vendor",
    parse: parseInteger(1),
  },
  findingsPerAsset: {
    key: "findingsPerAsset",
    env: "DEMO_FINDINGS_PER_ASSET",
    flag: "findings-per-asset",
    default: 10,
    description: "findings per asset",
    parse: parseInteger(1),
  },
  pageSize: {
    key: "pageSize",
    env: "DEMO_PAGE_SIZE",
    flag: "page-size",
    default: 25,
    unit: "assets",
    description: "assets per vendor page (Tenable chunks: at least 50)",
    parse: parseInteger(1, 500),
  },
  rateLimit: {
    key: "rateLimit",
    env: "DEMO_RATE_LIMIT",
    flag: "rate-limit",
    default: 10,
    unit: "requests per window",
    description: "quota of each simulated vendor API",
    parse: parseInteger(2),
  },
  rateWindowMs: {
    key: "rateWindowMs",
    env: "DEMO_RATE_WINDOW_MS",
    flag: "rate-window-ms",
    default: 10_000,
    unit: "ms",
    description: "rolling window of the quota",
    parse: parseInteger(100),
  },
  pollIntervalMs: {
    key: "pollIntervalMs",
    env: "DEMO_POLL_INTERVAL_MS",
    flag: "poll-interval-ms",
    default: 15_000,
    unit: "ms",
    description: "pause between sync cycles with --follow",
    parse: parseInteger(100),
  },
  timeoutMs: {
    key: "timeoutMs",
    env: "DEMO_TIMEOUT_MS",
    flag: "timeout-ms",
    default: 600_000,
    unit: "ms",
    description: "give up when the first full sync takes longer",
    parse: parseInteger(1_000),
  },
  dataDir: {
    key: "dataDir",
    env: "DEMO_DATA_DIR",
    flag: "data-dir",
    default: "",
    description: "folder for the log and state; default .data/demo-<time>",
    parse: parseString,
  },
} satisfies OptionSpecs;

const usage = "usage: npm run demo -- [--follow] [options]";

if (import.meta.main) process.exit(await main(process.argv.slice(2)));

async function main(argv: string[]): Promise<number> {
  const loaded = parseOptions(argv);
  if (loaded.help) {
    console.log(
      formatHelp(usage, specs, "Runs vulnsub against simulated vendor APIs."),
    );
    return 0;
  }
  const config = loaded.config;
  const stamp = new Date()
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\..*/, "");
  const dataDir = resolve(
    config.dataDir || join(REPO_DIR, ".data", `demo-${stamp}`),
  );
  mkdirSync(dataDir, { recursive: true });

  const say = (line: string) => process.stdout.write(`${line}\n`);
  say(`vulnsub demo: data in ${relative(process.cwd(), dataDir) || "."}`);
  say(
    `dataset: ${config.assets} assets x ${config.findingsPerAsset} findings ` +
      `per vendor (seed ${config.seed}); quota ${config.rateLimit} requests ` +
      `per ${config.rateWindowMs} ms per vendor`,
  );

  let redis;
  try {
    redis = await ensureRedis({ log: say });
  } catch (error) {
    if (error instanceof RedisNotFoundError) {
      console.error(`demo: ${error.message}`);
      return 1;
    }
    throw error;
  }

  try {
    return await runDemo({
      config,
      dataDir,
      redisUrl: redis.url,
      redisKeyPrefix: `vulnsub-demo-${stamp}-${process.pid}`,
      say,
    });
  } finally {
    await redis.stop();
  }
}

function parseOptions(argv: string[]) {
  try {
    // VULNSUB_CONFIG names the services' config file, not the demo's.
    return loadConfig(specs, {
      argv,
      env: { ...process.env, VULNSUB_CONFIG: undefined },
    });
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${usage}`);
    process.exit(2);
  }
}

function parseVendorList(raw: unknown): Vendor[] {
  const names = String(raw)
    .split(",")
    .map((name) => name.trim())
    .filter(Boolean);
  const vendors = names.filter((name): name is Vendor =>
    (VENDORS as readonly string[]).includes(name),
  );
  if (vendors.length === 0 || vendors.length !== names.length) {
    throw new Error(`expected a comma-separated list of ${VENDORS.join(", ")}`);
  }
  return [...new Set(vendors)];
}
