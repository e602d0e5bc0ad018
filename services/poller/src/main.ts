// Entry point: `bun run services/poller --vendor qualys|rapid7|tenable
// [--source NAME] [--once] [--help]`. Loads the config, wires Redis, the
// job lock, the flusher client and the vendor adapter into the poll loop,
// and stops gracefully on SIGTERM or SIGINT (a second signal exits at once).
import {
  ConfigError,
  createLogger,
  createRedisKeys,
  errorFields,
  jobId,
  startMetricsServer,
  type Logger,
  type MetricsServer,
} from "@vulnsub/shared";
import { vendorRegistry, type VendorRegistry } from "./adapters/index.ts";
import {
  formatPollerHelp,
  loadPollerConfig,
  type PollerConfig,
} from "./config.ts";
import { createCoordination } from "./coordination.ts";
import { createFlusherClient } from "./flusher-connection.ts";
import { createFlusherTls, flusherTlsMode } from "./flusher-tls.ts";
import { startHealthServer, type HealthServer } from "./health-server.ts";
import { createPollLoop } from "./poll-loop.ts";
import { createPollerHealth, jobHealthServiceName } from "./poller-health.ts";
import { createPollerMetrics } from "./poller-metrics.ts";
import { describeUrl } from "./vendor-http-body.ts";
import { createVendorHttp } from "./vendor-http.ts";
import { createVendorTransport } from "./vendor-transport.ts";

export interface RunPollerOptions {
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  /** Vendor adapters; tests substitute a fake one. */
  registry?: VendorRegistry;
}

/** Exit status: 0 after a stop or `--once`, 1 on failure, 2 on bad config. */
export async function runPoller(options: RunPollerOptions): Promise<number> {
  const registry = options.registry ?? vendorRegistry;
  let config: PollerConfig;
  try {
    const loaded = loadPollerConfig(registry, options.argv, options.env);
    if (loaded.help || !loaded.config) {
      process.stdout.write(`${formatPollerHelp(registry)}\n`);
      return 0;
    }
    config = loaded.config;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n\nsee --help for every option\n`);
    return 2;
  }

  // Modules add the job's fields themselves, so the base carries none.
  const logger = createLogger({ service: "poller" });
  try {
    return await runWithConfig(config, registry, logger);
  } catch (error) {
    logger.error(
      {
        event: "poller.failed",
        ...config.job,
        job: jobId(config.job),
        ...errorFields(error),
      },
      "poller failed",
    );
    return 1;
  }
}

async function runWithConfig(
  config: PollerConfig,
  registry: VendorRegistry,
  logger: Logger,
): Promise<number> {
  const { job } = config;
  const jobLogger = logger.child({ ...job, job: jobId(job) });
  const entry = registry[job.vendor];
  const metrics = createPollerMetrics(job);
  const keys = createRedisKeys(config.redisKeyPrefix);
  const coordination = createCoordination({ config, keys, logger, metrics });
  const flusher = createFlusherClient(
    config.flusherAddress,
    createFlusherTls(config),
  );
  const transport = createVendorTransport(config);
  const adapter = entry.createAdapter({
    baseUrl: config.baseUrl,
    options: config.vendorOptions,
  });

  const loop = createPollLoop({
    job,
    adapter,
    createHttp: (signal) =>
      createVendorHttp({
        profile: entry.profile,
        baseUrl: config.baseUrl,
        credentials: config.credentials,
        gate: coordination.gate,
        logger: jobLogger.child({ area: "http" }),
        signal,
        maxAttempts: config.requestMaxAttempts,
        requestTimeoutMs: config.requestTimeoutMs,
        onAdvertisedLimit: coordination.onAdvertisedLimit,
        onConcurrencyLimit: coordination.onConcurrencyLimit,
        onThrottle: metrics.throttled,
        onRateLimitWaited: metrics.rateLimitWaited,
        onAttempt: metrics.vendorAttempt,
        transport,
      }),
    lock: coordination.lock,
    flusher,
    logger,
    pollIntervalMs: config.pollIntervalMs,
    maxUnackedBatches: config.maxUnackedBatches,
    maxBatchRecords: config.maxBatchRecords,
    backfillStart: config.backfillStart,
    lookbackMs: config.lookbackMs,
    once: config.once,
    shutdownGraceMs: config.shutdownGraceMs,
    cycleRetryBaseMs: config.cycleRetryBaseMs,
    cycleRetryMaxMs: config.cycleRetryMaxMs,
    observer: metrics.observer,
  });
  const health = createPollerHealth({
    job,
    status: loop.status,
    redis: coordination.redisState,
    pollIntervalMs: config.pollIntervalMs,
    staleFactor: config.healthStaleFactor,
    logger: jobLogger,
    onChange: metrics.setHealthy,
  });
  metrics.setHealthy(true);

  const removeSignalHandlers = handleSignals(loop.stop, jobLogger);
  let metricsServer: MetricsServer | null = null;
  let healthServer: HealthServer | null = null;
  try {
    metricsServer = config.metricsListen
      ? startMetricsServer({
          listen: config.metricsListen,
          registry: metrics.registry,
          healthz: health.report,
        })
      : null;
    healthServer = config.healthListen
      ? await startHealthServer(config.healthListen, health.service)
      : null;
    logStarted(jobLogger, config, {
      metricsAddress: metricsServer?.address ?? null,
      healthAddress: healthServer?.address ?? null,
      transport: transport.describe(),
    });

    await loop.run();
  } finally {
    removeSignalHandlers();
    health.close();
    flusher.close();
    await coordination.close();
    await metricsServer?.close();
    await healthServer?.close();
  }
  jobLogger.info({ event: "poller.stopped" }, "poller stopped");
  return 0;
}

function logStarted(
  logger: Logger,
  config: PollerConfig,
  endpoints: {
    metricsAddress: string | null;
    healthAddress: string | null;
    transport: Record<string, unknown>;
  },
) {
  logger.info(
    {
      event: "poller.started",
      flusher: config.flusherAddress,
      flusherTls: flusherTlsMode(config),
      baseUrl: describeUrl(config.baseUrl),
      metricsAddress: endpoints.metricsAddress,
      healthAddress: endpoints.healthAddress,
      healthService: jobHealthServiceName(config.job),
      pollIntervalMs: config.pollIntervalMs,
      rateLimitRpm: config.rateLimit.requests,
      rateLimitWindowMs: config.rateLimit.windowMs,
      once: config.once,
      ...endpoints.transport,
    },
    `polling ${jobId(config.job)} into flusher ${config.flusherAddress}`,
  );
}

// The first SIGTERM or SIGINT stops gracefully; a second exits at once.
function handleSignals(stop: () => void, logger: Logger): () => void {
  let received = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    received++;
    if (received > 1) {
      logger.warn(
        { event: "poller.stopped", signal, forced: true },
        `second ${signal}: exiting without waiting`,
      );
      process.exit(1);
    }
    logger.info({ event: "signal.received", signal }, `received ${signal}`);
    stop();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  return () => {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  };
}

if (import.meta.main) {
  const code = await runPoller({
    argv: process.argv.slice(2),
    env: process.env,
  });
  process.exit(code);
}
