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
}

export function createServiceSlot(
  spec: SlotSpec,
  tracker: EventTracker,
): ServiceSlot {
  let runs = 0;
  let current: { process: ServiceProcess; ref: RunRef } | undefined;
  const exits: { run: number; status: ExitStatus }[] = [];

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
    });
    current = { process, ref };
    void process.exited.then((status) => {
      exits.push({ run: ref.run, status });
      tracker.recordExit(ref);
      if (current?.ref === ref) current = undefined;
    });
    return process;
  };

  const kill = async () => {
    const running = current?.process;
    if (!running) return undefined;
    running.signal("SIGKILL");
    return await running.exited;
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
      return await running.stop(graceMs);
    },
    exits: () => exits,
  };
}
