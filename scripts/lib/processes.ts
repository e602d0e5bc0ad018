// Child processes for the demo, the start supervisor and the end-to-end
// tests: each service runs in its own process group (setsid), its stdout
// is read line by line as JSON log events, and every line of stdout and
// stderr is copied to an optional log file.
//
// Stopping signals the whole group, so a `bun run` wrapper and anything it
// started stop together. An exit handler kills the groups still running
// when this process exits. Only a SIGKILL of this process itself can leave
// them behind.
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { createInterface } from "node:readline";

/** One JSON log line of a service. */
export type JsonEvent = Record<string, unknown> & { event?: string };

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServiceSpec {
  /** Short name for messages, for example "poller.qualys". */
  name: string;
  /** Program and arguments. */
  command: readonly string[];
  env?: Readonly<Record<string, string | undefined>>;
  cwd?: string;
  /** File that receives every stdout and stderr line (appended). */
  logPath?: string;
  onEvent?: (event: JsonEvent) => void;
  /** Receives every line of both streams as is, before any parsing. */
  onLine?: (line: string, stream: "stdout" | "stderr") => void;
  /** Receives stdout lines that are not JSON objects, and stderr lines. */
  onText?: (line: string, stream: "stdout" | "stderr") => void;
}

export interface ServiceProcess {
  readonly name: string;
  readonly pid: number;
  /** Resolves once the process has exited and its output is read. */
  readonly exited: Promise<ExitStatus>;
  isRunning(): boolean;
  /** Every event seen so far, in order. */
  events(): readonly JsonEvent[];
  /**
   * Resolves with the first event (seen before or after the call) that
   * matches; rejects when the process exits first or after `timeoutMs`.
   */
  waitForEvent(
    match: (event: JsonEvent) => boolean,
    timeoutMs: number,
  ): Promise<JsonEvent>;
  /** Sends a signal to the process group. */
  signal(signal: NodeJS.Signals): void;
  /** SIGTERM to the group, then SIGKILL after `graceMs`; awaits exit. */
  stop(graceMs?: number): Promise<ExitStatus>;
}

const liveGroups = new Set<number>();
let exitHandlerInstalled = false;

/** Starts a service in its own process group. */
export function spawnService(spec: ServiceSpec): ServiceProcess {
  installExitHandler();
  const [program, ...args] = spec.command;
  if (!program) throw new Error(`${spec.name}: empty command`);

  const child = spawn(program, args, {
    cwd: spec.cwd,
    env: cleanEnv(spec.env ?? process.env),
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const pid = child.pid ?? 0;
  if (pid > 0) liveGroups.add(pid);

  const log = spec.logPath
    ? createWriteStream(spec.logPath, { flags: "a" })
    : undefined;
  const seen: JsonEvent[] = [];
  const waiters = new Set<(event: JsonEvent) => void>();
  const onEvent = (event: JsonEvent) => {
    seen.push(event);
    spec.onEvent?.(event);
    for (const waiter of waiters) waiter(event);
  };

  const exited = collectOutput(child, spec, log, onEvent).then((status) => {
    liveGroups.delete(pid);
    return status;
  });
  let running = pid > 0;
  void exited.then(() => (running = false));

  const signal = (name: NodeJS.Signals) => {
    if (running) killGroup(pid, name);
  };

  return {
    name: spec.name,
    pid,
    exited,
    isRunning: () => running,
    events: () => seen,
    waitForEvent(match, timeoutMs) {
      return waitForEvent(spec.name, seen, waiters, exited, match, timeoutMs);
    },
    signal,
    async stop(graceMs = 10_000) {
      signal("SIGTERM");
      const timer = setTimeout(() => signal("SIGKILL"), graceMs);
      const status = await exited;
      clearTimeout(timer);
      return status;
    },
  };
}

/** Stops services in parallel and returns their exit statuses by name. */
export async function stopServices(
  services: readonly ServiceProcess[],
  graceMs = 10_000,
): Promise<Map<string, ExitStatus>> {
  const statuses = await Promise.all(services.map((s) => s.stop(graceMs)));
  return new Map(services.map((service, i) => [service.name, statuses[i]!]));
}

/**
 * Handles SIGINT and SIGTERM for a program that stops its children. The
 * first signal calls `onStop`. Another one a second or more later calls
 * `onForce` and exits with 130, and the exit handler SIGKILLs every child
 * group. Signals within that second are ignored, because npm and the
 * bootstrap forward a copy of the Ctrl-C the terminal already sent.
 * Returns a function that removes the handlers.
 */
export function handleStopSignals(handlers: {
  onStop: (signal: NodeJS.Signals) => void;
  onForce: (signal: NodeJS.Signals) => void;
}): () => void {
  let firstAt = 0;
  const handler = (signal: NodeJS.Signals) => {
    if (firstAt === 0) {
      firstAt = Date.now();
      handlers.onStop(signal);
      return;
    }
    if (Date.now() - firstAt < 1_000) return;
    handlers.onForce(signal);
    process.exit(130);
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return () => {
    process.removeListener("SIGINT", handler);
    process.removeListener("SIGTERM", handler);
  };
}

/** Parses one output line as a JSON object, or returns undefined. */
export function parseJsonEvent(line: string): JsonEvent | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      return undefined;
    }
    return value as JsonEvent;
  } catch {
    return undefined;
  }
}

/** Formats an exit status: "exit 0", "signal SIGTERM". */
export function describeExit(status: ExitStatus): string {
  return status.signal ? `signal ${status.signal}` : `exit ${status.code}`;
}

async function collectOutput(
  child: ChildProcess,
  spec: ServiceSpec,
  log: WriteStream | undefined,
  onEvent: (event: JsonEvent) => void,
): Promise<ExitStatus> {
  // A write error (its folder removed) must not crash the supervisor; the
  // child's output still reaches onLine and onEvent.
  log?.on("error", (error) => {
    spec.onText?.(`${spec.name}: log file: ${error.message}`, "stderr");
  });
  let spawnFailed = false;
  const exit = new Promise<ExitStatus>((resolve) => {
    child.once("error", (error) => {
      spec.onText?.(`${spec.name}: ${error.message}`, "stderr");
      spawnFailed = true;
      resolve({ code: 127, signal: null });
    });
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });

  const readStream = async (
    stream: NodeJS.ReadableStream | null,
    name: "stdout" | "stderr",
  ) => {
    if (!stream) return;
    for await (const line of createInterface({ input: stream })) {
      log?.write(`${line}\n`);
      spec.onLine?.(line, name);
      const event = name === "stdout" ? parseJsonEvent(line) : undefined;
      if (event) onEvent(event);
      else spec.onText?.(line, name);
    }
  };

  const readers = Promise.all([
    readStream(child.stdout, "stdout"),
    readStream(child.stderr, "stderr"),
  ]);
  const status = await exit;
  // A child that failed to spawn never ends its pipes, so its readers
  // would wait forever; a child that ran may still have output buffered.
  if (spawnFailed) {
    child.stdout?.destroy();
    child.stderr?.destroy();
  } else {
    await readers;
  }
  if (log) await new Promise((resolve) => log.end(resolve));
  return status;
}

function waitForEvent(
  name: string,
  seen: readonly JsonEvent[],
  waiters: Set<(event: JsonEvent) => void>,
  exited: Promise<ExitStatus>,
  match: (event: JsonEvent) => boolean,
  timeoutMs: number,
): Promise<JsonEvent> {
  const earlier = seen.find(match);
  if (earlier) return Promise.resolve(earlier);

  return new Promise((resolve, reject) => {
    const waiter = (event: JsonEvent) => {
      if (!match(event)) return;
      finish();
      resolve(event);
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`${name}: expected event not seen in ${timeoutMs} ms`));
    }, timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      waiters.delete(waiter);
    };
    waiters.add(waiter);
    void exited.then((status) => {
      if (!waiters.has(waiter)) return;
      finish();
      reject(
        new Error(`${name}: ${describeExit(status)} before expected event`),
      );
    });
  });
}

function killGroup(pid: number, signal: NodeJS.Signals) {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

function installExitHandler() {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  process.on("exit", () => {
    for (const pid of liveGroups) killGroup(pid, "SIGKILL");
  });
}

function cleanEnv(
  env: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined) result[key] = value;
  }
  return result;
}
