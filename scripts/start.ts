// `npm start`: runs vulnsub on one machine: the flusher and NUM_WORKERS
// pollers for each vendor in VENDORS that has credentials. Each process is
// supervised: restarted after it exits, with a delay doubling from 1 s to
// 30 s. SIGTERM or SIGINT stops the pollers first (they finish their
// in-flight batches), then the flusher.
//
// stdout carries the JSON log lines of every process plus the
// supervisor's own (process.started, process.exited, supervisor.stopped);
// the plan and the children's stderr go to stderr.
import {
  createLogger,
  formatHelp,
  loadConfig,
  parseHostPort,
  parseInteger,
  parseString,
  VENDORS,
  type OptionSpecs,
} from "@vulnsub/shared";
import { REPO_DIR } from "./lib/demo-stack.ts";
import { handleStopSignals, type ServiceSpec } from "./lib/processes.ts";
import { planStart, type StartPlan } from "./lib/start-plan.ts";
import { superviseService, type Supervisor } from "./lib/supervisor.ts";

const specs = {
  vendors: {
    key: "vendors",
    env: "VENDORS",
    flag: "vendors",
    default: VENDORS.join(","),
    description: "vendors to poll; those without credentials are skipped",
    parse: parseString,
  },
  numWorkers: {
    key: "numWorkers",
    env: "NUM_WORKERS",
    flag: "num-workers",
    // One poller holds a job's lock at a time; extra ones wait as standbys
    // and take over within the lock's stale time when it dies.
    default: 1,
    unit: "pollers per vendor",
    description: "pollers per vendor; all but one are standbys",
    parse: parseInteger(1, 16),
  },
  flusherListen: {
    key: "flusherListen",
    env: "FLUSHER_LISTEN",
    flag: "flusher-listen",
    default: "127.0.0.1:50051",
    description:
      "flusher gRPC address; a fixed port, as pollers reconnect to it",
    parse: parseFixedHostPort,
  },
  metricsListen: {
    key: "metricsListen",
    env: "METRICS_LISTEN",
    flag: "metrics-listen",
    default: "127.0.0.1:9464",
    description:
      'first metrics address: the flusher gets this port, pollers the next ones; "off" disables',
    parse: (raw: unknown) => {
      const text = parseString(raw);
      if (text !== "off") parseHostPort(text);
      return text;
    },
  },
  shutdownTimeoutMs: {
    key: "shutdownTimeoutMs",
    env: "START_SHUTDOWN_TIMEOUT_MS",
    flag: "shutdown-timeout-ms",
    default: 30_000,
    unit: "ms",
    description: "wait for a process to stop before SIGKILL",
    parse: parseInteger(100, 600_000),
  },
} satisfies OptionSpecs;

const usage =
  "usage: npm start [-- options]   (settings also from the environment)";

if (import.meta.main) await main(process.argv.slice(2));

async function main(argv: string[]) {
  const loaded = parseOptions(argv);
  if (loaded.help) {
    console.log(
      formatHelp(
        usage,
        specs,
        "Runs and supervises the flusher and the pollers.",
      ),
    );
    return;
  }

  let plan: StartPlan;
  try {
    plan = planStart(loaded.config, process.env);
  } catch (error) {
    console.error(`start: ${(error as Error).message}`);
    process.exit(1);
  }
  for (const line of plan.describe()) console.error(line);

  const logger = createLogger({ service: "supervisor" });
  const supervise = (spec: () => ServiceSpec) =>
    superviseService(spec, {
      onStart: (service, run) =>
        logger.info(
          {
            event: "process.started",
            name: service.name,
            pid: service.pid,
            run,
          },
          "process started",
        ),
      onExit: (service, status, restartInMs) =>
        logger.warn(
          {
            event: "process.exited",
            name: service.name,
            pid: service.pid,
            code: status.code,
            signal: status.signal,
            restartInMs,
          },
          "process exited; restarting",
        ),
    });

  const flusher = supervise(() =>
    childSpec("flusher", ["run", "services/flusher"], plan.flusherEnv),
  );
  const pollers: Supervisor[] = plan.pollers.map((poller) =>
    supervise(() =>
      childSpec(
        poller.name,
        ["run", "services/poller", "--vendor", poller.vendor],
        poller.env,
      ),
    ),
  );

  const stop = async (signal: NodeJS.Signals) => {
    logger.info(
      { event: "supervisor.stopping", signal },
      "stopping pollers, then the flusher",
    );
    await Promise.all(
      pollers.map((p) => p.stop(loaded.config.shutdownTimeoutMs)),
    );
    await flusher.stop(loaded.config.shutdownTimeoutMs);
    logger.info({ event: "supervisor.stopped", signal }, "supervisor stopped");
    process.exit(0);
  };
  handleStopSignals({
    onStop: (signal) => void stop(signal),
    onForce: (signal) =>
      logger.warn(
        { event: "supervisor.killed", signal },
        "second signal: killing every process",
      ),
  });
}

/** Builds a child spec that copies its lines to stdout and stderr. */
function childSpec(
  name: string,
  args: string[],
  env: Readonly<Record<string, string | undefined>>,
): ServiceSpec {
  return {
    name,
    command: [process.execPath, ...args],
    cwd: REPO_DIR,
    env,
    onLine: (line, stream) => {
      if (stream === "stdout") process.stdout.write(`${line}\n`);
      else process.stderr.write(`${name}: ${line}\n`);
    },
  };
}

function parseOptions(argv: string[]) {
  try {
    // The shared config file (VULNSUB_CONFIG) contains service keys that
    // this supervisor does not know, and the services read it themselves.
    return loadConfig(specs, {
      argv,
      env: { ...process.env, VULNSUB_CONFIG: undefined },
    });
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${usage}`);
    process.exit(2);
  }
}

function parseFixedHostPort(raw: unknown): string {
  const text = parseString(raw);
  if (parseHostPort(text).port === 0) {
    throw new Error(
      "expected a fixed port, not 0: pollers reconnect to it after a flusher restart",
    );
  }
  return text;
}
