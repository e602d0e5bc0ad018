// Keeps one service running: restarts it whenever it exits, after a delay
// that doubles from `initialBackoffMs` up to `maxBackoffMs`, and falls back
// to the initial delay once a run lasted `stableAfterMs`. `stop()` ends the
// current run and prevents further restarts.
import {
  spawnService,
  type ExitStatus,
  type ServiceProcess,
  type ServiceSpec,
} from "./processes.ts";

export interface SupervisorOptions {
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  stableAfterMs?: number;
  onStart?: (service: ServiceProcess, run: number) => void;
  /** Called after each unexpected exit with the delay before the restart. */
  onExit?: (
    service: ServiceProcess,
    status: ExitStatus,
    restartInMs: number,
  ) => void;
}

export interface Supervisor {
  readonly name: string;
  /** The current run, undefined while waiting to restart or after stop. */
  current(): ServiceProcess | undefined;
  /** Runs started so far, the first included. */
  runs(): number;
  stop(graceMs?: number): Promise<void>;
}

/** Starts `createSpec()` now and again after every exit until stopped. */
export function superviseService(
  createSpec: () => ServiceSpec,
  options: SupervisorOptions = {},
): Supervisor {
  const initialMs = options.initialBackoffMs ?? 1_000;
  const maxMs = options.maxBackoffMs ?? 30_000;
  const stableMs = options.stableAfterMs ?? 60_000;
  let delayMs = initialMs;
  let runs = 0;
  let stopped = false;
  let current: ServiceProcess | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const name = createSpec().name;

  const launch = () => {
    timer = undefined;
    if (stopped) return;
    runs++;
    const startedAt = Date.now();
    const service = spawnService(createSpec());
    current = service;
    options.onStart?.(service, runs);

    void service.exited.then((status) => {
      current = undefined;
      if (stopped) return;
      if (Date.now() - startedAt >= stableMs) delayMs = initialMs;
      const wait = delayMs;
      delayMs = Math.min(delayMs * 2, maxMs);
      options.onExit?.(service, status, wait);
      timer = setTimeout(launch, wait);
    });
  };
  launch();

  return {
    name,
    current: () => current,
    runs: () => runs,
    async stop(graceMs = 30_000) {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (current) await current.stop(graceMs);
    },
  };
}
