// A restartable service of the chaos stack: the flusher or one poller. Each
// run is a real child process in its own process group, with every stdout
// and stderr line copied to <logDir>/<name>.run<N>.log (the files the
// secrets scan reads) and its JSON events fed to the tracker.
import { join } from "node:path";
import type { Vendor } from "@vulnsub/shared";
import {
  spawnService,
  type ExitStatus,
  type ServiceProcess,
} from "../lib/processes.ts";
import type { EventTracker, RunRef } from "./event-tracker.ts";

export interface SlotSpec {
  name: string;
  vendor: Vendor | null;
  command: readonly string[];
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
  logDir: string;
  /** Receives harness-side problems: spawn errors, lost exit events. */
  note(line: string): void;
}

export interface ServiceSlot {
  readonly name: string;
  readonly vendor: Vendor | null;
  /** The running process, or undefined between a kill and its restart. */
  current(): ServiceProcess | undefined;
  /** The current run, as the tracker names it. */
  currentRef(): RunRef | undefined;
  /** Runs started so far. */
  runs(): number;
  /** Starts a new run; throws when one is running. */
  start(): ServiceProcess;
  /** SIGKILLs the process group and waits for the exit. */
  kill(): Promise<ExitStatus | undefined>;
  /** Sends a signal to the process group (SIGSTOP, SIGCONT). */
  signal(signal: NodeJS.Signals): void;
  /** Stops the run: SIGTERM, then SIGKILL after graceMs; undefined when none ran. */
  stop(graceMs: number): Promise<ExitStatus | undefined>;
  /** Exit statuses of the finished runs, in order. */
  exits(): readonly { run: number; status: ExitStatus }[];
  /**
   * Ends the current run when its pid has been gone for `graceMs` without
   * an exit event; returns true when it did.
   */
  reapIfGone(graceMs: number): boolean;
}

/** Exit status recorded for a run whose spawn failed (no process). */
const SPAWN_FAILED: ExitStatus = { code: 127, signal: null };
/** Wait for the exit event after a SIGKILL before checking the pid. */
const KILL_EXIT_TIMEOUT_MS = 10_000;

export function createServiceSlot(
  spec: SlotSpec,
  tracker: EventTracker,
): ServiceSlot {
  let runs = 0;
  let current: { process: ServiceProcess; ref: RunRef } | undefined;
  const exits: { run: number; status: ExitStatus }[] = [];
  let goneSinceMs: number | undefined;

  const finishRun = (ref: RunRef, status: ExitStatus) => {
    if (exits.some((exit) => exit.run === ref.run)) return;
    exits.push({ run: ref.run, status });
    tracker.recordExit(ref);
    if (current?.ref === ref) current = undefined;
  };

  const start = () => {
    if (current?.process.isRunning()) {
      throw new Error(`${spec.name}: run ${current.ref.run} is still running`);
    }
    runs++;
    const ref: RunRef = { name: spec.name, vendor: spec.vendor, run: runs };
    const process = spawnService({
      name: `${spec.name}.run${runs}`,
      command: spec.command,
      cwd: spec.cwd,
      env: spec.env,
      logPath: join(spec.logDir, `${spec.name}.run${runs}.log`),
      onEvent: (event) => tracker.record(ref, event),
      onText: (line, stream) => {
        if (stream === "stderr" && line.startsWith(`${spec.name}.run`)) spec.note(line);
      },
    });
    current = { process, ref };
    goneSinceMs = undefined;
    void process.exited.then((status) => finishRun(ref, status));
    // A failed spawn has no pid, and its exited promise may never settle
    // because the pipes of a process that never started do not end.
    if (process.pid === 0) {
      spec.note(`${spec.name} run ${runs}: spawn failed`);
      finishRun(ref, SPAWN_FAILED);
    }
    return process;
  };

  const kill = async () => {
    const running = current;
    if (!running) return undefined;
    running.process.signal("SIGKILL");
    const status = await Promise.race([
      running.process.exited,
      Bun.sleep(KILL_EXIT_TIMEOUT_MS).then(() => undefined),
    ]);
    if (status) return status;

    // No exit event in time: record the run as killed, and note whether
    // its pid is still there, so the harness never waits on a lost event.
    const alive = isAlive(running.process.pid);
    spec.note(
      `${spec.name} run ${running.ref.run}: no exit event ${KILL_EXIT_TIMEOUT_MS} ms ` +
        `after SIGKILL (pid ${running.process.pid} ${alive ? "alive" : "gone"})`,
    );
    const killed: ExitStatus = { code: null, signal: "SIGKILL" };
    finishRun(running.ref, killed);
    return killed;
  };

  return {
    name: spec.name,
    vendor: spec.vendor,
    current: () => current?.process,
    currentRef: () => current?.ref,
    runs: () => runs,
    start,
    kill,
    signal: (signal) => current?.process.signal(signal),
    async stop(graceMs) {
      const running = current?.process;
      if (!running) return undefined;
      // A stopped group acts on SIGTERM only once it is continued.
      running.signal("SIGCONT");
      const status = await Promise.race([
        running.stop(graceMs),
        Bun.sleep(graceMs + KILL_EXIT_TIMEOUT_MS).then(() => undefined),
      ]);
      return status ?? (await kill());
    },
    exits: () => exits,
    reapIfGone(graceMs) {
      const running = current;
      if (!running || isAlive(running.process.pid)) {
        goneSinceMs = undefined;
        return false;
      }
      goneSinceMs ??= Date.now();
      if (Date.now() - goneSinceMs < graceMs) return false;
      spec.note(
        `${spec.name} run ${running.ref.run}: pid ${running.process.pid} is gone ` +
          `but no exit event came in ${graceMs} ms`,
      );
      finishRun(running.ref, { code: null, signal: null });
      return true;
    },
  };
}

function isAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
