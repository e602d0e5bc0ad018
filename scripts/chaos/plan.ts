// The chaos plan: every random choice of a run, drawn up front from one
// seeded PRNG in a fixed order (credentials, steps, fault phases). The
// same seed and options give the same plan; only the moments at which
// trigger events (acks, fetched pages) arrive differ between runs.
import { VENDORS, type Vendor } from "@vulnsub/shared";
import { createRandom, type Random } from "@vulnsub/simulators";
import {
  FAULT_PROFILE_NAMES,
  type FaultProfileName,
} from "./fault-profiles.ts";
import type { ChaosOptions } from "./options.ts";

export type StepKind =
  | "kill-flusher"
  | "kill-flusher-in-recovery"
  | "kill-flusher-after-ack"
  | "kill-holder"
  | "kill-standby"
  | "kill-holder-mid-page"
  | "kill-holder-mid-export"
  | "kill-holder-after-ack"
  | "restart-redis"
  | "pause-holder";

export interface ChaosStep {
  index: number;
  kind: StepKind;
  /** Vendor whose poller the step targets; ignored by flusher and Redis. */
  vendor: Vendor;
  /** Wait before the step starts. */
  gapMs: number;
  /**
   * Kind-specific delay: after the trigger event (mid-page, mid-export),
   * Redis down time (restart-redis), or pause beyond lockStaleMs
   * (pause-holder).
   */
  delayMs: number;
  /** Wait between a SIGKILL and the restart of the killed process. */
  restartDelayMs: number;
  /** SIGKILLs the step plans (2 for kill-flusher-in-recovery). */
  kills: number;
}

export interface FaultPhase {
  index: number;
  /** Offset from the start of the chaos phase. */
  startMs: number;
  durationMs: number;
  profile: FaultProfileName;
  /** Delay of a slow response in this phase. */
  slowMs: number;
}

/** Vendor credentials of one run; drawn, so a scan can find every copy. */
export interface ChaosCredentials {
  qualysUsername: string;
  qualysPassword: string;
  rapid7ApiKey: string;
  tenableAccessKey: string;
  tenableSecretKey: string;
}

export interface ChaosPlan {
  seed: number;
  credentials: ChaosCredentials;
  steps: ChaosStep[];
  phases: FaultPhase[];
}

/**
 * Kill kinds every run tries first, in a seeded order; after the first
 * pass every kill kind is drawn with the same probability.
 */
const NAMED_KILLS: readonly StepKind[] = [
  "kill-holder-after-ack",
  "kill-holder-mid-page",
  "kill-holder-mid-export",
  "kill-flusher-in-recovery",
  "kill-flusher-after-ack",
];
const PLAIN_KILLS: readonly StepKind[] = [
  "kill-flusher",
  "kill-holder",
  "kill-standby",
];
const EXTRA_STEP_RATE = 0.12;

/** Draws the whole plan of a run from `options.seed`. */
export function createChaosPlan(options: ChaosOptions): ChaosPlan {
  const random = createRandom(options.seed);
  const credentials = drawCredentials(random);
  const steps = drawSteps(random, options);
  const phases = drawPhases(random, options);
  return { seed: options.seed, credentials, steps, phases };
}

/** Counts the SIGKILLs a list of steps plans. */
export function plannedKills(steps: readonly ChaosStep[]): number {
  return steps.reduce((sum, step) => sum + step.kills, 0);
}

/** Formats the plan, one line per step and per fault phase. */
export function formatPlan(plan: ChaosPlan): string[] {
  const lines = [`plan of seed ${plan.seed}: ${plan.steps.length} steps`];
  for (const step of plan.steps) lines.push(`  ${describeStep(step)}`);
  lines.push(`fault phases: ${plan.phases.length}`);
  for (const phase of plan.phases) {
    const slow = phase.profile === "slow" || phase.profile === "mixed"
      ? ` (slowMs ${phase.slowMs})`
      : "";
    lines.push(
      `  phase ${phase.index} at ${phase.startMs} ms for ` +
        `${phase.durationMs} ms: ${phase.profile}${slow}`,
    );
  }
  return lines;
}

/** Describes one step: "step 3 kill-holder-mid-page rapid7 (...)". */
export function describeStep(step: ChaosStep): string {
  const target = isVendorStep(step.kind) ? ` ${step.vendor}` : "";
  return (
    `step ${step.index} ${step.kind}${target} after ${step.gapMs} ms ` +
    `(delay ${step.delayMs} ms, restart after ${step.restartDelayMs} ms)`
  );
}

/** True for steps aimed at one vendor's poller. */
export function isVendorStep(kind: StepKind): boolean {
  return kind.includes("holder") || kind === "kill-standby";
}

function drawCredentials(random: Random): ChaosCredentials {
  const token = () =>
    Array.from({ length: 16 }, () => random.int(0, 15).toString(16)).join("");
  return {
    qualysUsername: "chaos-user",
    qualysPassword: `qualys-password-${token()}`,
    rapid7ApiKey: `rapid7-key-${token()}`,
    tenableAccessKey: `tenable-access-${token()}`,
    tenableSecretKey: `tenable-secret-${token()}`,
  };
}

function drawSteps(random: Random, options: ChaosOptions): ChaosStep[] {
  const plain = options.pollersPerVendor > 1
    ? PLAIN_KILLS
    : PLAIN_KILLS.filter((kind) => kind !== "kill-standby");
  const queue = [...shuffle(random, NAMED_KILLS), ...shuffle(random, plain)];
  const anyKill = [...NAMED_KILLS, ...plain];
  const steps: ChaosStep[] = [];
  let kills = 0;

  while (kills < options.kills) {
    let kind = queue.shift() ?? random.pick(anyKill);
    if (kind === "kill-flusher-in-recovery" && options.kills - kills < 2) {
      kind = "kill-flusher";
    }
    const step = drawStep(random, options, kind, steps.length);
    steps.push(step);
    kills += step.kills;

    for (const extra of ["restart-redis", "pause-holder"] as const) {
      const missing = !steps.some((s) => s.kind === extra);
      // Each extra kind runs once after the second kill, so short runs
      // cover it too. Later kills are followed by one at EXTRA_STEP_RATE.
      const add = missing ? steps.length >= 2 : random.chance(EXTRA_STEP_RATE);
      if (add) steps.push(drawStep(random, options, extra, steps.length));
    }
  }
  return steps;
}

function drawStep(
  random: Random,
  options: ChaosOptions,
  kind: StepKind,
  index: number,
): ChaosStep {
  const vendor = kind === "kill-holder-mid-export" ? "tenable" : random.pick(VENDORS);
  const gapMs = random.int(options.stepGapMs.min, options.stepGapMs.max);
  const restartDelayMs = random.int(0, 1_500);
  let delayMs = 0;
  if (kind === "kill-holder-mid-page" || kind === "kill-holder-mid-export") {
    delayMs = random.int(0, 400);
  } else if (kind === "restart-redis") {
    delayMs = random.int(200, 4_000);
  } else if (kind === "pause-holder") {
    delayMs = random.int(1_000, 4_000);
  }
  const kills = kind === "kill-flusher-in-recovery"
    ? 2
    : kind.startsWith("kill-") ? 1 : 0;
  return { index, kind, vendor, gapMs, delayMs, restartDelayMs, kills };
}

function drawPhases(random: Random, options: ChaosOptions): FaultPhase[] {
  // Every fault profile once, each followed by a calm phase of half the
  // length in which cycles can complete, then random phases until the
  // time cap is covered.
  const queue: FaultProfileName[] = shuffle(random, FAULT_PROFILE_NAMES)
    .flatMap((profile) => [profile, "calm" as const]);
  const phases: FaultPhase[] = [];
  let startMs = 0;

  while (startMs < options.maxChaosMs) {
    const profile = queue.shift() ??
      (random.chance(0.4) ? "calm" : random.pick(FAULT_PROFILE_NAMES));
    const fullMs = random.int(options.phaseMs.min, options.phaseMs.max);
    const durationMs = profile === "calm" ? Math.round(fullMs / 2) : fullMs;
    const slowMs = random.int(500, 6_000);
    phases.push({ index: phases.length, startMs, durationMs, profile, slowMs });
    startMs += durationMs;
  }
  return phases;
}

function shuffle<T>(random: Random, items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = random.int(0, i);
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}
