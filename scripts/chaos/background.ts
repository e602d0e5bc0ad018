// Background activity during the chaos phase: fault phases switched on
// the simulators at their planned offsets, simulator epochs advanced after
// each completed cycle, and a watchdog that restarts any process that
// exited without being killed by the suite.
import type { Vendor } from "@vulnsub/shared";
import { NO_FAULTS } from "@vulnsub/simulators";
import type { ChaosTally } from "./actions.ts";
import { isCycleCompleted } from "./event-tracker.ts";
import { faultSettingsFor } from "./fault-profiles.ts";
import type { FaultPhase } from "./plan.ts";
import type { ChaosStack } from "./stack.ts";

/** A process run that ended without a SIGKILL from the suite. */
export interface UnexpectedExit {
  name: string;
  run: number;
  code: number | null;
  signal: string | null;
  logFile: string;
}

export interface Background {
  /** Turns faults off and stops advancing epochs and restarting. */
  stop(): void;
  /** Phases applied so far. */
  phasesApplied(): number;
  unexpectedExits(): readonly UnexpectedExit[];
}

const WATCHDOG_INTERVAL_MS = 500;
/** Time a pid may be gone before its missing exit event counts as lost. */
const GHOST_GRACE_MS = 5_000;

/** Starts fault phases, epoch advances and the watchdog. */
export function startBackground(
  stack: ChaosStack,
  phases: readonly FaultPhase[],
  tally: ChaosTally,
  note: (line: string) => void,
): Background {
  const startedAt = Date.now();
  let stopped = false;
  let applied = 0;
  const timers = phases.map((phase) =>
    setTimeout(() => {
      if (stopped) return;
      const settings = faultSettingsFor(phase.profile, phase.slowMs);
      for (const simulator of stack.simulators.values()) simulator.setFaults(settings);
      applied++;
    }, Math.max(0, phase.startMs - (Date.now() - startedAt))),
  );

  const unsubscribe = stack.tracker.subscribe((tracked) => {
    const vendor = tracked.source.vendor;
    if (stopped || !vendor || !isCycleCompleted(tracked.event)) return;
    if (!isHolderRun(stack, vendor, tracked.source.name, tracked.source.run)) return;
    // Only after a completed cycle: every version served during an
    // unfinished cycle is served again, unchanged, by its retry.
    stack.simulators.get(vendor)?.advanceEpoch();
    tally.epochsAdvanced[vendor]++;
  });

  const exits: UnexpectedExit[] = [];
  const seen = new Set<string>();
  const watchdog = setInterval(() => {
    if (stopped) return;
    for (const slot of [stack.flusher, ...stack.pollers]) {
      slot.reapIfGone(GHOST_GRACE_MS);
      const last = slot.exits().at(-1);
      if (slot.current() || !last || last.status.signal === "SIGKILL") continue;
      const key = `${slot.name}.${last.run}`;
      if (seen.has(key)) continue;
      seen.add(key);
      exits.push({
        name: slot.name,
        run: last.run,
        code: last.status.code,
        signal: last.status.signal,
        logFile: `${slot.name}.run${last.run}.log`,
      });
      note(`${slot.name} run ${last.run} exited by itself (code ${last.status.code}); restarting`);
      slot.start();
      tally.restarts++;
    }
  }, WATCHDOG_INTERVAL_MS);

  return {
    stop() {
      stopped = true;
      for (const timer of timers) clearTimeout(timer);
      clearInterval(watchdog);
      unsubscribe();
      for (const simulator of stack.simulators.values()) simulator.setFaults(NO_FAULTS);
    },
    phasesApplied: () => applied,
    unexpectedExits: () => exits,
  };
}

function isHolderRun(stack: ChaosStack, vendor: Vendor, name: string, run: number) {
  const holder = stack.tracker.holder(vendor);
  return holder?.source.name === name && holder.source.run === run;
}
