import pino, { type Logger } from "pino";
import { createRequire } from "node:module";

export type { Logger } from "pino";

/**
 * Log contract for every vulnsub process:
 * - one JSON object per line on stdout, with `event` (past tense, dotted:
 *   `batch.acked`, `lock.lost`) and fields from one shared list: vendor,
 *   source, job, cursor, seq, durationMs, code (the error code), err;
 * - info is lifecycle, warn is recovered with no loss, error means data at
 *   risk or a human needed;
 * - secrets never appear: the redact list covers every credential field,
 *   and code never puts a credential in a message.
 *
 * LOG_LEVEL sets the level (default info), LOG_FORMAT=pretty prints for a
 * terminal, and LOG_DEBUG=area1,area2 turns on debug for those areas only
 * (each module logs through `logger.child({ area })`).
 */
export interface LoggerOptions {
  service: string;
  level?: string;
  pretty?: boolean;
  debugAreas?: readonly string[];
  /** Destination for tests; defaults to stdout. */
  destination?: NodeJS.WritableStream;
  base?: Record<string, unknown>;
}

/** --help section for the logging variables every service reads. */
export const LOG_ENVIRONMENT_HELP = [
  "Logging (environment only):",
  "  LOG_LEVEL   (default info)  trace, debug, info, warn, error or silent",
  "  LOG_FORMAT  (default json)  json: one JSON object per line; pretty: " +
    "for a terminal",
  "  LOG_DEBUG   (default unset) comma-separated areas that log at debug, " +
    "e.g. http,lock",
].join("\n");

const REDACT_PATHS = [
  "password",
  "apiKey",
  "accessKey",
  "secretKey",
  "authorization",
  "headers.authorization",
  "headers.Authorization",
  'headers["x-api-key"]',
  'headers["X-Api-Key"]',
  'headers["x-apikeys"]',
  'headers["X-ApiKeys"]',
  "*.password",
  "*.apiKey",
  "*.accessKey",
  "*.secretKey",
];

export function createLogger(options: LoggerOptions): Logger {
  const env = process.env;
  const level = options.level ?? env.LOG_LEVEL ?? "info";
  const usePretty = options.pretty ?? env.LOG_FORMAT === "pretty";
  const debugAreas = new Set(
    options.debugAreas ??
      (env.LOG_DEBUG ?? "").split(",").map((area) => area.trim()).filter(Boolean),
  );
  const destination =
    options.destination ??
    (usePretty
      ? loadPretty()({ sync: true, colorize: process.stdout.isTTY === true })
      : pino.destination({ sync: true }));

  const root = pino(
    {
      level: debugAreas.size > 0 ? "debug" : level,
      base: { service: options.service, pid: process.pid, ...options.base },
      messageKey: "msg",
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      formatters: { level: (label) => ({ level: label }) },
      hooks: {
        // Debug lines pass only for the areas LOG_DEBUG names, unless
        // LOG_LEVEL itself is debug.
        logMethod(args, method, levelNumber) {
          if (levelNumber === 20 && level !== "debug" && level !== "trace") {
            const area = (this as Logger).bindings().area;
            if (typeof area !== "string" || !debugAreas.has(area)) return;
          }
          method.apply(this, args);
        },
      },
    },
    destination,
  );
  return root;
}

/**
 * Rate-limits repeated log lines: `allow(key)` returns true at most once
 * per interval per key, and `takeSuppressed(key)` returns how many calls it
 * rejected since then, so the next line can report the count.
 */
export function createRepeatLimiter(
  intervalMs: number,
  now: () => number = Date.now,
) {
  const last = new Map<string, { at: number; suppressed: number }>();
  return {
    allow(key: string): boolean {
      const entry = last.get(key);
      const time = now();
      if (!entry || time - entry.at >= intervalMs) {
        last.set(key, { at: time, suppressed: 0 });
        return true;
      }
      entry.suppressed++;
      return false;
    },
    /** Returns and resets the swallowed count of the allowed key. */
    takeSuppressed(key: string): number {
      const entry = last.get(key);
      if (!entry) return 0;
      const count = entry.suppressed;
      entry.suppressed = 0;
      return count;
    },
    reset(key: string) {
      last.delete(key);
    },
  };
}

/** Serializes an error for a log line with its code and cause chain. */
export function errorFields(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { err: { message: String(error) } };
  const code = (error as { code?: unknown }).code;
  return {
    code: typeof code === "string" ? code : "internal",
    err: pino.stdSerializers.err(error),
  };
}

/**
 * Loads pino-pretty only for LOG_FORMAT=pretty: it costs about 20 ms of
 * start-up that JSON logging, the production default, does not need.
 */
function loadPretty(): PrettyFactory {
  const require = createRequire(import.meta.url);
  const loaded = require("pino-pretty") as
    | PrettyFactory
    | { default: PrettyFactory };
  return "default" in loaded ? loaded.default : loaded;
}

type PrettyFactory = (options: {
  sync: boolean;
  colorize: boolean;
}) => NodeJS.WritableStream;
