// The plan of `npm start`: the pollers to run and each process's environment.
import { isVendor, parseHostPort, type Vendor } from "@vulnsub/shared";
import { redactUrl } from "./ensure-redis.ts";

export interface StartSettings {
  /** Comma-separated vendor names. */
  vendors: string;
  numWorkers: number;
  flusherListen: string;
  /** host:port of the flusher's metrics, or "off". */
  metricsListen: string;
}

export interface PlannedPoller {
  name: string;
  vendor: Vendor;
  env: Record<string, string | undefined>;
}

export interface StartPlan {
  flusherEnv: Record<string, string | undefined>;
  pollers: PlannedPoller[];
  skipped: { vendor: Vendor; missing: string[] }[];
  /** Lines describing the plan, for stderr. */
  describe(): string[];
}

/** Credential variables each vendor's poller needs. */
export const VENDOR_CREDENTIALS: Readonly<Record<Vendor, readonly string[]>> = {
  qualys: ["QUALYS_USERNAME", "QUALYS_PASSWORD"],
  rapid7: ["RAPID7_API_KEY"],
  tenable: ["TENABLE_ACCESS_KEY", "TENABLE_SECRET_KEY"],
};

/**
 * Builds the plan. Throws when VENDORS names an unknown vendor or when no
 * listed vendor has credentials.
 */
export function planStart(
  settings: StartSettings,
  env: Readonly<Record<string, string | undefined>>,
): StartPlan {
  const vendors = parseVendors(settings.vendors);
  const skipped = vendors
    .map((vendor) => ({ vendor, missing: missingCredentials(vendor, env) }))
    .filter((entry) => entry.missing.length > 0);
  const active = vendors.filter((v) => !skipped.some((s) => s.vendor === v));
  if (active.length === 0) {
    throw new Error(
      `no vendor to poll: ${skipped
        .map((s) => `${s.vendor} needs ${s.missing.join(" and ")}`)
        .join("; ")} (each may also come from <NAME>_FILE)`,
    );
  }

  const redisUrl = redisUrlOf(env);
  const metrics = metricsAddresses(settings.metricsListen);
  const base = { ...env, REDIS_URL: redisUrl };
  const flusherEnv = {
    ...base,
    FLUSHER_LISTEN: settings.flusherListen,
    METRICS_LISTEN: metrics(0),
  };

  const flusherAddress = connectAddress(settings.flusherListen);
  const pollers: PlannedPoller[] = [];
  for (const vendor of active) {
    for (let worker = 1; worker <= settings.numWorkers; worker++) {
      pollers.push({
        name: `poller-${vendor}-${worker}`,
        vendor,
        env: {
          ...base,
          FLUSHER_ADDRESS: flusherAddress,
          METRICS_LISTEN: metrics(pollers.length + 1),
        },
      });
    }
  }

  return {
    flusherEnv,
    pollers,
    skipped,
    describe: () =>
      describePlan(settings, flusherEnv, pollers, skipped, redisUrl),
  };
}

function parseVendors(text: string): Vendor[] {
  const names = text
    .split(",")
    .map((name) => name.trim())
    .filter(Boolean);
  const unknown = names.filter((name) => !isVendor(name));
  if (unknown.length > 0 || names.length === 0) {
    throw new Error(
      `VENDORS ${JSON.stringify(text)}: expected a comma-separated list of qualys, rapid7, tenable`,
    );
  }
  return [...new Set(names as Vendor[])];
}

function missingCredentials(
  vendor: Vendor,
  env: Readonly<Record<string, string | undefined>>,
): string[] {
  return VENDOR_CREDENTIALS[vendor].filter(
    (name) => !env[name] && !env[`${name}_FILE`],
  );
}

/**
 * REDIS_URL wins; else REDIS_HOST and REDIS_PORT build one; else undefined
 * leaves the services' own default.
 */
function redisUrlOf(
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  if (env.REDIS_URL) return env.REDIS_URL;
  if (!env.REDIS_HOST && !env.REDIS_PORT) return undefined;
  const host = env.REDIS_HOST || "127.0.0.1";
  const bracketed = host.includes(":") ? `[${host}]` : host;
  return `redis://${bracketed}:${env.REDIS_PORT || "6379"}`;
}

/** Returns the metrics address of the n-th process (flusher = 0). */
function metricsAddresses(first: string): (n: number) => string {
  if (first === "off") return () => "off";
  const { host, port } = parseHostPort(first);
  const bracketed = host.includes(":") ? `[${host}]` : host;
  return (n) => (port === 0 ? `${bracketed}:0` : `${bracketed}:${port + n}`);
}

/** Pollers reach a flusher listening on every interface over loopback. */
function connectAddress(listen: string): string {
  const { host, port } = parseHostPort(listen);
  if (host === "0.0.0.0") return `127.0.0.1:${port}`;
  if (host === "::") return `[::1]:${port}`;
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

function describePlan(
  settings: StartSettings,
  flusherEnv: Record<string, string | undefined>,
  pollers: PlannedPoller[],
  skipped: { vendor: Vendor; missing: string[] }[],
  redisUrl: string | undefined,
): string[] {
  const lines = [
    "vulnsub start plan:",
    `  flusher  listen ${settings.flusherListen}, metrics ${flusherEnv.METRICS_LISTEN}, ` +
      `data ${flusherEnv.DATA_DIR ?? "./data (default)"}, ` +
      `flush batch ${flusherEnv.FLUSH_BATCH_SIZE ?? "default"}`,
  ];
  for (const poller of pollers) {
    lines.push(
      `  ${poller.name.padEnd(18)} metrics ${poller.env.METRICS_LISTEN}`,
    );
  }
  if (settings.numWorkers > 1) {
    lines.push(
      `  per vendor one of ${settings.numWorkers} pollers holds the job lock; ` +
        "the others are standbys",
    );
  }
  for (const entry of skipped) {
    lines.push(
      `  skipped ${entry.vendor}: ${entry.missing.join(" and ")} not set`,
    );
  }
  lines.push(
    `  redis ${redisUrl ? redactUrl(redisUrl) : "services' default"}, ` +
      `rate limit ${flusherEnv.RATE_LIMIT_RPM ?? "default"} requests per window`,
  );
  return lines;
}
