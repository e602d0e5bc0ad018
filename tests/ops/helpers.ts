// Shared fixtures of the operations tests: real flusher and poller child
// processes, metrics scraping, a redis-server of the test's own, and
// certificates made with openssl.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  deleteKeysWithPrefix,
  pingRedis,
} from "../../scripts/lib/ensure-redis.ts";
import {
  spawnService,
  type JsonEvent,
  type ServiceProcess,
  type ServiceSpec,
} from "../../scripts/lib/processes.ts";

export const REPO_DIR = resolve(import.meta.dir, "../..");
export const FLUSHER_MAIN = join(REPO_DIR, "services/flusher/src/main.ts");
export const POLLER_MAIN = join(REPO_DIR, "services/poller/src/main.ts");
export const SHARED_REDIS_URL =
  process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/** Temp folder, Redis key prefix and cleanups of one test. */
export interface Workspace {
  dir: string;
  prefix: string;
  /** Runs `cleanup` in afterEach, newest first. */
  defer(cleanup: () => Promise<unknown> | unknown): void;
  cleanup(): Promise<void>;
}

export function createWorkspace(): Workspace {
  const dir = mkdtempSync(join(tmpdir(), "vulnsub-ops-"));
  const prefix = `vulnsub-ops-${randomBytes(6).toString("hex")}`;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  return {
    dir,
    prefix,
    defer: (cleanup) => cleanups.push(cleanup),
    async cleanup() {
      for (const cleanup of cleanups.splice(0).reverse()) {
        await cleanup();
      }
      await deleteKeysWithPrefix(SHARED_REDIS_URL, prefix).catch(() => 0);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RunningService {
  process: ServiceProcess;
  /** Every stdout and stderr line so far. */
  output(): string;
  /** Address logged at start; "" when the service logs none. */
  address: string;
  metricsAddress: string | null;
  healthAddress: string | null;
}

/** Starts a flusher on 127.0.0.1:0 and waits until it serves. */
export async function startFlusher(
  workspace: Workspace,
  env: Record<string, string> = {},
): Promise<RunningService> {
  const { child, output } = spawnWithOutput({
    name: "flusher",
    command: ["bun", FLUSHER_MAIN],
    env: baseEnv({
      FLUSHER_LISTEN: "127.0.0.1:0",
      DATA_DIR: join(workspace.dir, "data"),
      METRICS_LISTEN: "127.0.0.1:0",
      ...env,
    }),
  });
  workspace.defer(() => child.stop(5_000));
  const listening = await child.waitForEvent(isEvent("flusher.listening"), 20_000);
  await child.waitForEvent(isEvent("flusher.serving"), 20_000);
  const metrics = child.events().find(isEvent("metrics.listening"));
  return {
    process: child,
    output,
    address: String(listening.address),
    metricsAddress: metrics ? String(metrics.address) : null,
    healthAddress: String(listening.address),
  };
}

/** Starts a poller; resolves after poller.started with its endpoints. */
export async function startPoller(
  workspace: Workspace,
  env: Record<string, string>,
): Promise<RunningService> {
  const { process: child, output } = spawnPollerProcess(workspace, env);
  const started = await child.waitForEvent(isEvent("poller.started"), 20_000);
  return {
    process: child,
    output,
    address: String(started.flusher),
    metricsAddress: nullableString(started.metricsAddress),
    healthAddress: nullableString(started.healthAddress),
  };
}

/** Spawns a poller without waiting; for runs that may fail at start. */
export function spawnPollerProcess(
  workspace: Workspace,
  env: Record<string, string>,
): { process: ServiceProcess; output(): string } {
  const { child, output } = spawnWithOutput({
    name: "poller",
    command: ["bun", POLLER_MAIN],
    env: baseEnv({
      STATE_DIR: join(workspace.dir, "state"),
      REDIS_URL: SHARED_REDIS_URL,
      REDIS_KEY_PREFIX: workspace.prefix,
      RATE_LIMIT_RPM: "1000",
      RATE_LIMIT_WINDOW_MS: "1000",
      METRICS_LISTEN: "127.0.0.1:0",
      HEALTH_LISTEN: "127.0.0.1:0",
      ...env,
    }),
  });
  workspace.defer(() => child.stop(5_000));
  return { process: child, output };
}

/** Spawns a service and keeps every line it prints. */
export function spawnWithOutput(spec: ServiceSpec) {
  const lines: string[] = [];
  const child = spawnService({
    ...spec,
    onLine: (line) => lines.push(line),
  });
  return { child, output: () => lines.join("\n") };
}

export function isEvent(name: string, test: (event: JsonEvent) => boolean = () => true) {
  return (event: JsonEvent) => event.event === name && test(event);
}

export function eventsOf(child: ServiceProcess, name: string): JsonEvent[] {
  return child.events().filter((event) => event.event === name);
}

/** GETs /metrics and returns the exposition text. */
export async function scrapeMetrics(address: string | null): Promise<string> {
  const response = await fetch(`http://${address}/metrics`);
  return response.text();
}

/**
 * Returns the value of the sample `name{labels}` (labels in any order),
 * or undefined when the exposition has no such sample.
 */
export function sampleValue(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = parseLabels(match[2] ?? "");
    const wanted = Object.entries(labels);
    if (wanted.every(([key, value]) => found[key] === value)) {
      return Number(match[3]);
    }
  }
  return undefined;
}

/** GETs /healthz and returns the status code with the JSON body. */
export async function fetchHealthz(address: string | null) {
  const response = await fetch(`http://${address}/healthz`);
  const body = (await response.json()) as Record<string, unknown> & {
    healthy: boolean;
    reason: string;
  };
  return { status: response.status, body };
}

/** Polls `condition` every 50 ms; throws naming `what` after `timeoutMs`. */
export async function waitUntil(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await Bun.sleep(50);
  }
}

/** A redis-server of the test's own, which the test may stop and restart. */
export interface OwnRedis {
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** Starts redis-server on `port` of 127.0.0.1 with persistence off. */
export async function startOwnRedis(
  workspace: Workspace,
  port: number,
): Promise<OwnRedis> {
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | null = null;

  const stop = async () => {
    const running = child;
    child = null;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((done) => running.once("exit", done));
    running.kill("SIGKILL");
    await exited;
  };
  const start = async () => {
    child = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", ""],
      { stdio: "ignore", cwd: workspace.dir },
    );
    await waitUntil(`redis-server on ${port}`, async () => {
      return (await pingRedis(url, 500)) === undefined;
    });
  };

  await start();
  workspace.defer(stop);
  return { url, stop, start };
}

/** PEM files of a test PKI; every key is unencrypted. */
export interface TestCertificates {
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate from another CA that the server must reject. */
  rogueCert: string;
  rogueKey: string;
}

/**
 * Creates a CA, a server certificate for 127.0.0.1, ::1 and localhost,
 * a client certificate from that CA and one from an unrelated CA, with
 * openssl, in `dir`.
 */
export function createTestCertificates(dir: string): TestCertificates {
  const path = (name: string) => join(dir, name);
  const extensions = path("server.ext");
  writeFileSync(
    extensions,
    "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n" +
      "extendedKeyUsage=serverAuth\n",
  );
  const clientExtensions = path("client.ext");
  writeFileSync(clientExtensions, "extendedKeyUsage=clientAuth\n");

  createCa(path("ca"), "vulnsub test ca");
  createCa(path("rogue-ca"), "vulnsub rogue ca");
  signCertificate(path("server"), path("ca"), "vulnsub flusher", extensions);
  signCertificate(path("client"), path("ca"), "vulnsub poller", clientExtensions);
  signCertificate(path("rogue"), path("rogue-ca"), "rogue poller", clientExtensions);
  return {
    caCert: path("ca.pem"),
    serverCert: path("server.pem"),
    serverKey: path("server-key.pem"),
    clientCert: path("client.pem"),
    clientKey: path("client-key.pem"),
    rogueCert: path("rogue.pem"),
    rogueKey: path("rogue-key.pem"),
  };
}

function createCa(base: string, name: string) {
  openssl([
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
    "-subj", `/CN=${name}`,
    "-keyout", `${base}-key.pem`, "-out", `${base}.pem`,
  ]);
}

function signCertificate(
  base: string,
  ca: string,
  name: string,
  extensions: string,
) {
  openssl([
    "req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${name}`,
    "-keyout", `${base}-key.pem`, "-out", `${base}.csr`,
  ]);
  openssl([
    "x509", "-req", "-in", `${base}.csr`, "-days", "2",
    "-CA", `${ca}.pem`, "-CAkey", `${ca}-key.pem`, "-CAcreateserial",
    "-extfile", extensions, "-out", `${base}.pem`,
  ]);
}

function openssl(args: string[]) {
  const result = spawnSync("openssl", args, { encoding: "utf8" });
  if (result.status !== 0) {
    throw new Error(`openssl ${args[0]} failed: ${result.stderr}`);
  }
}

function baseEnv(env: Record<string, string>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    LOG_FORMAT: "json",
    ...env,
  };
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const match of text.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
    labels[match[1] as string] = match[2] as string;
  }
  return labels;
}

function nullableString(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}
