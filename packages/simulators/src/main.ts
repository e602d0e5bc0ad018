// Runs one vendor simulator until SIGTERM or SIGINT:
//   bun packages/simulators/src/main.ts --vendor qualys --port 0 --seed 1 \
//     --assets 100 --findings-per-asset 10 --rate-limit 20 \
//     --rate-window-ms 10000
// Logs {"event":"simulator.listening","vendor":...,"url":...} once it
// accepts requests, and the simulator's counters on stop.
import {
  createLogger,
  errorFields,
  formatHelp,
  loadConfig,
  parseEnum,
  parseInteger,
  parseNonEmptyString,
  VENDORS,
  type OptionSpecs,
} from "@vulnsub/shared";
import { mergeFaults, NO_FAULTS } from "./common.ts";
import { startSimulator, type SimulatorOptions } from "./index.ts";

const specs = {
  vendor: {
    key: "vendor",
    env: "SIMULATOR_VENDOR",
    flag: "vendor",
    description: `vendor API to simulate: ${VENDORS.join(", ")}`,
    parse: parseEnum(VENDORS),
  },
  host: {
    key: "host",
    env: "SIMULATOR_HOST",
    flag: "host",
    default: "127.0.0.1",
    description: "listen address (keep it on loopback)",
    parse: parseNonEmptyString,
  },
  port: {
    key: "port",
    env: "SIMULATOR_PORT",
    flag: "port",
    default: 0,
    description: "listen port; 0 picks a free one",
    parse: parseInteger(0, 65535),
  },
  seed: {
    key: "seed",
    env: "SIMULATOR_SEED",
    flag: "seed",
    default: 1,
    description: "seed of the dataset and fault draws",
    parse: parseInteger(0, 2 ** 32 - 1),
  },
  assets: {
    key: "assets",
    env: "SIMULATOR_ASSETS",
    flag: "assets",
    default: 100,
    description: "assets (hosts) in the dataset",
    parse: parseInteger(0),
  },
  findingsPerAsset: {
    key: "findingsPerAsset",
    env: "SIMULATOR_FINDINGS_PER_ASSET",
    flag: "findings-per-asset",
    default: 10,
    description: "findings per asset",
    parse: parseInteger(0),
  },
  rateLimit: {
    key: "rateLimit",
    env: "SIMULATOR_RATE_LIMIT",
    flag: "rate-limit",
    default: 0,
    unit: "requests per window",
    description: "API quota; 0 keeps the vendor's documented default",
    parse: parseInteger(0),
  },
  rateWindowMs: {
    key: "rateWindowMs",
    env: "SIMULATOR_RATE_WINDOW_MS",
    flag: "rate-window-ms",
    default: 60_000,
    unit: "ms",
    description: "rolling window of --rate-limit",
    parse: parseInteger(1),
  },
  faults: {
    key: "faults",
    env: "SIMULATOR_FAULTS",
    flag: "faults",
    default: NO_FAULTS,
    description:
      'fault probabilities as JSON, for example {"serverErrorRate":0.05}',
    parse: parseFaults,
  },
} satisfies OptionSpecs;

const usage =
  "usage: bun packages/simulators/src/main.ts --vendor qualys|rapid7|tenable [options]";

if (import.meta.main) await main();

async function main() {
  const logger = createLogger({ service: "simulator" });
  const loaded = parseOptions(process.argv.slice(2));
  if (loaded.help) {
    console.log(formatHelp(usage, specs));
    return;
  }

  const { config } = loaded;
  const options: SimulatorOptions = {
    host: config.host,
    port: config.port,
    seed: config.seed,
    assets: config.assets,
    findingsPerAsset: config.findingsPerAsset,
    faults: config.faults,
  };
  if (config.rateLimit > 0) {
    options.rateLimit = {
      requests: config.rateLimit,
      windowMs: config.rateWindowMs,
    };
  }

  const simulator = await startSimulator(config.vendor, options);
  logger.info(
    {
      event: "simulator.listening",
      vendor: simulator.vendor,
      url: simulator.url,
      findings: simulator.counters().findings,
      quota: simulator.counters().quota,
    },
    "simulator listening",
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    try {
      const counters = simulator.counters();
      await simulator.stop();
      logger.info(
        {
          event: "simulator.stopped",
          vendor: simulator.vendor,
          signal,
          counters,
        },
        "simulator stopped",
      );
      process.exit(0);
    } catch (error) {
      logger.error(
        {
          event: "simulator.stop_failed",
          vendor: simulator.vendor,
          ...errorFields(error),
        },
        "simulator stop failed",
      );
      process.exit(1);
    }
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

function parseOptions(argv: string[]) {
  try {
    // VULNSUB_CONFIG names the services' config file, not a simulator's.
    return loadConfig(specs, {
      argv,
      env: { ...process.env, VULNSUB_CONFIG: undefined },
    });
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${usage}`);
    process.exit(2);
  }
}

function parseFaults(raw: unknown) {
  const value: unknown = typeof raw === "string" ? JSON.parse(raw) : raw;
  return mergeFaults(NO_FAULTS, value);
}
