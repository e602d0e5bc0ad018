import { join } from "node:path";
import {
  formatHelp,
  LOG_ENVIRONMENT_HELP,
  loadConfig,
  parseHostPort,
  parseInteger,
  parseString,
  type ConfigOf,
  type LoadConfigInput,
} from "@vulnsub/shared";
import { createFlusherCredentials } from "./flusher-tls.ts";

const MIB = 1024 * 1024;

/** Options of the flusher; see `bun run services/flusher --help`. */
export const flusherOptions = {
  listen: {
    key: "listen",
    env: "FLUSHER_LISTEN",
    flag: "listen",
    default: "127.0.0.1:50051",
    description: "gRPC listen address host:port; port 0 picks a free port",
    parse: (raw: unknown) => {
      const text = parseString(raw);
      parseHostPort(text);
      return text;
    },
  },
  dataDir: {
    key: "dataDir",
    env: "DATA_DIR",
    flag: "data-dir",
    default: "./data",
    description: "folder of the findings log and its side files",
    parse: parseString,
  },
  findingsLogPath: {
    key: "findingsLogPath",
    env: "FINDINGS_LOG_PATH",
    flag: "findings-log-path",
    // Empty means <dataDir>/vulnerabilities.jsonl, resolved after loading.
    default: "",
    description: "findings log file (default <dataDir>/vulnerabilities.jsonl)",
    parse: parseString,
  },
  flushBatchSize: {
    key: "flushBatchSize",
    env: "FLUSH_BATCH_SIZE",
    flag: "flush-batch-size",
    // 500 records of 1-5 KB make a write of about 1.5 MB, enough to
    // amortise one fsync without delaying acks for long.
    default: 500,
    unit: "records",
    description: "records per group commit (one write and one fsync)",
    parse: parseInteger(1, 1_000_000),
  },
  flushMaxDelayMs: {
    key: "flushMaxDelayMs",
    env: "FLUSH_MAX_DELAY_MS",
    flag: "flush-max-delay-ms",
    // The durability window of an unfilled group: its oldest batch waits
    // at most this long before the group is written and fsynced.
    default: 20,
    unit: "ms",
    description: "max wait for a group commit to fill before it is written",
    parse: parseInteger(0, 60_000),
  },
  maxMessageBytes: {
    key: "maxMessageBytes",
    env: "MAX_MESSAGE_BYTES",
    flag: "max-message-bytes",
    default: 64 * MIB,
    unit: "bytes",
    description: "max gRPC message size, received and sent",
    parse: parseInteger(1024, 2 ** 31 - 1),
  },
  maxRecordBytes: {
    key: "maxRecordBytes",
    env: "MAX_RECORD_BYTES",
    flag: "max-record-bytes",
    // A Tenable plugin output alone can reach 1 MB; 8 MiB leaves room for
    // the envelope and the rest of the raw object.
    default: 8 * MIB,
    unit: "bytes",
    description: "max size of one finding JSON line",
    parse: parseInteger(64, 2 ** 31 - 1),
  },
  metricsListen: {
    key: "metricsListen",
    env: "METRICS_LISTEN",
    flag: "metrics-listen",
    default: "127.0.0.1:9464",
    description: 'Prometheus /metrics and /healthz host:port, or "off"',
    parse: (raw: unknown) => {
      const text = parseString(raw);
      if (text !== "off") parseHostPort(text);
      return text;
    },
  },
  snapshotIntervalBytes: {
    key: "snapshotIntervalBytes",
    env: "SNAPSHOT_INTERVAL_BYTES",
    flag: "snapshot-interval-bytes",
    // Bounds the log tail a restart scans past the last snapshot.
    default: 256 * MIB,
    unit: "bytes",
    description: "log growth after which the dedup snapshot is rewritten",
    parse: parseInteger(1, Number.MAX_SAFE_INTEGER),
  },
  snapshotIntervalMs: {
    key: "snapshotIntervalMs",
    env: "SNAPSHOT_INTERVAL_MS",
    flag: "snapshot-interval-ms",
    default: 300_000,
    unit: "ms",
    description: "time after which a changed dedup snapshot is rewritten",
    parse: parseInteger(1, 86_400_000),
  },
  shutdownTimeoutMs: {
    key: "shutdownTimeoutMs",
    env: "SHUTDOWN_TIMEOUT_MS",
    flag: "shutdown-timeout-ms",
    default: 10_000,
    unit: "ms",
    description: "max wait for open streams to close after their last ack",
    parse: parseInteger(0, 600_000),
  },
  // Empty TLS paths keep the gRPC server plaintext, which suits loopback.
  tlsCertFile: {
    key: "tlsCertFile",
    env: "TLS_CERT_FILE",
    flag: "tls-cert-file",
    default: "",
    description: "PEM server certificate chain; set, the gRPC server uses TLS",
    parse: parseString,
  },
  tlsKeyFile: {
    key: "tlsKeyFile",
    env: "TLS_KEY_FILE",
    flag: "tls-key-file",
    default: "",
    description: "PEM private key of TLS_CERT_FILE",
    parse: parseString,
  },
  tlsClientCaFile: {
    key: "tlsClientCaFile",
    env: "TLS_CLIENT_CA_FILE",
    flag: "tls-client-ca-file",
    default: "",
    description:
      "PEM CA bundle; set, clients must present a certificate it signed",
    parse: parseString,
  },
};

export type FlusherConfig = ConfigOf<typeof flusherOptions>;

export const FLUSHER_USAGE = "usage: bun run services/flusher [options]";
export const FLUSHER_SUMMARY =
  "Receives finding batches over gRPC, appends them to the findings log " +
  "(JSON Lines), fsyncs, then acks.";

/**
 * Loads the flusher config and resolves the default log path. Throws
 * ConfigError when a TLS file is missing, unreadable or lacks its pair.
 */
export function loadFlusherConfig(input: LoadConfigInput = {}) {
  const loaded = loadConfig(flusherOptions, input);
  if (!loaded.help) createFlusherCredentials(loaded.config);
  const config: FlusherConfig = Object.freeze({
    ...loaded.config,
    findingsLogPath:
      loaded.config.findingsLogPath ||
      join(loaded.config.dataDir, "vulnerabilities.jsonl"),
  });
  return { ...loaded, config };
}

export function formatFlusherHelp(): string {
  const options = formatHelp(FLUSHER_USAGE, flusherOptions, FLUSHER_SUMMARY);
  return `${options}\n\n${LOG_ENVIRONMENT_HELP}`;
}
