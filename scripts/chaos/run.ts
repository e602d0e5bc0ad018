// One chaos run from start to verdict: start the stack, carry out the
// planned steps while fault phases switch and epochs advance, quiesce,
// stop every process gracefully, then check the log, the quotas and the
// captured output. Every child process is killed and the simulators and
// Redis are stopped before this returns, whatever failed.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { VENDORS, type Vendor } from "@vulnsub/shared";
import type { SimulatorCounters } from "@vulnsub/simulators";
import type { ExitStatus } from "../lib/processes.ts";
import type { GroundTruthSet } from "../verify-log.ts";
import { createTally, executeStep, type ChaosTally } from "./actions.ts";
import { startBackground, type UnexpectedExit } from "./background.ts";
import { runChecks, type ChaosChecks } from "./checks.ts";
import type { ChaosOptions } from "./options.ts";
import { createChaosPlan, describeStep, type ChaosPlan } from "./plan.ts";
import { quiesce, type QuiesceResult } from "./quiesce.ts";
import { secretForms } from "./simulators.ts";
import {
  createChaosDirs,
  startChaosStack,
  type ChaosDirs,
  type ChaosStack,
} from "./stack.ts";

export interface ChaosResult {
  options: ChaosOptions;
  plan: ChaosPlan;
  dirs: ChaosDirs;
  tally: ChaosTally;
  stepsRun: number;
  /** True when the time cap or an interrupt ended the steps early. */
  stoppedEarly: boolean;
  phasesApplied: number;
  takeovers: Record<Vendor, number>;
  cyclesCompleted: Record<Vendor, number>;
  cyclesFailed: Record<Vendor, number>;
  /** Streams the flusher ended because a batch carried an old token. */
  staleTokenRejections: number;
  unexpectedExits: readonly UnexpectedExit[];
  quiesce: QuiesceResult | null;
  /** Exit of each service at the graceful stop. */
  stopStatuses: Map<string, ExitStatus | undefined>;
  checks: ChaosChecks | null;
  /** Reason the run could not finish its checks, or null. */
  error: string | null;
  durationMs: number;
  passed: boolean;
}

export interface RunChaosInput {
  options: ChaosOptions;
  say: (line: string) => void;
  /** Aborting ends the run early; checks are skipped. */
  signal?: AbortSignal;
}

const STOP_GRACE_MS = 20_000;
const FIRST_LOCK_TIMEOUT_MS = 60_000;

/** Runs the suite once and returns its figures and verdict. */
export async function runChaos(input: RunChaosInput): Promise<ChaosResult> {
  const { options, say } = input;
  const startedAt = Date.now();
  const plan = createChaosPlan(options);
  const dirs = createChaosDirs();
  const tally = createTally();
  const result: ChaosResult = {
    options, plan, dirs, tally,
    stepsRun: 0,
    stoppedEarly: false,
    phasesApplied: 0,
    takeovers: byVendor(() => 0),
    cyclesCompleted: byVendor(() => 0),
    cyclesFailed: byVendor(() => 0),
    staleTokenRejections: 0,
    unexpectedExits: [],
    quiesce: null,
    stopStatuses: new Map(),
    checks: null,
    error: null,
    durationMs: 0,
    passed: false,
  };

  let stack: ChaosStack | undefined;
  try {
    say(`chaos: temp dir ${dirs.root}`);
    stack = await startChaosStack(options, plan, dirs, (line) => say(`chaos: ${line}`));
    say(`chaos: stack started (flusher ${stack.flusherAddress}, redis ${stack.redis.url})`);
    await waitForFirstLocks(stack);
    await runSteps(stack, result, input);
    if (input.signal?.aborted) throw new Error("interrupted");
    await finish(stack, result, say);
  } catch (error) {
    result.error = (error as Error).message;
  } finally {
    await stack?.destroy();
    result.durationMs = Date.now() - startedAt;
  }
  result.passed = result.error === null && result.checks?.passed === true;
  return result;
}

async function runSteps(stack: ChaosStack, result: ChaosResult, input: RunChaosInput) {
  const { options, say } = input;
  const note = (line: string) => say(`chaos: ${line}`);
  const background = startBackground(stack, result.plan.phases, result.tally, note);
  const deadline = Date.now() + options.maxChaosMs;
  // Every wait inside a step is bounded; this cap guards the harness
  // against a wait that is not.
  const stepTimeoutMs = 2 * options.triggerTimeoutMs + options.lockStaleMs + 30_000;
  const context = {
    stack,
    tally: result.tally,
    lockStaleMs: options.lockStaleMs,
    triggerTimeoutMs: options.triggerTimeoutMs,
    note,
  };

  try {
    for (const step of result.plan.steps) {
      if (input.signal?.aborted || Date.now() + step.gapMs > deadline) {
        result.stoppedEarly = true;
        note(`stopping before step ${step.index}: time cap or interrupt`);
        break;
      }
      await sleepUnlessAborted(step.gapMs, input.signal);
      if (input.signal?.aborted) continue;
      note(describeStep(step));
      const finished = await Promise.race([
        executeStep(step, context).then(() => true),
        Bun.sleep(stepTimeoutMs).then(() => false),
      ]);
      if (!finished) note(`step ${step.index} still running after ${stepTimeoutMs} ms; going on`);
      result.stepsRun++;
    }
  } finally {
    background.stop();
    result.phasesApplied = background.phasesApplied();
    result.unexpectedExits = background.unexpectedExits();
  }
}

async function finish(stack: ChaosStack, result: ChaosResult, say: (line: string) => void) {
  say("chaos: quiescing: faults off, every process up, one clean cycle per vendor");
  result.quiesce = await quiesce(stack, result.options.quiesceTimeoutMs, (line) =>
    say(`chaos: ${line}`),
  );
  if (!result.quiesce.ok) throw new Error(`quiesce failed: ${result.quiesce.failure}`);

  say("chaos: stopping pollers and flusher gracefully");
  result.stopStatuses = await stack.stopServices(STOP_GRACE_MS);
  result.staleTokenRejections = stack.tracker.countWithCode(
    "stream.rejected",
    "fencing_token_stale",
  );
  for (const vendor of VENDORS) {
    result.takeovers[vendor] = Math.max(0, stack.tracker.lockAcquisitions(vendor) - 1);
    result.cyclesCompleted[vendor] = stack.tracker.cyclesCompleted(vendor);
    result.cyclesFailed[vendor] = stack.tracker.countFor(vendor, "cycle.failed");
  }

  const counters = new Map<Vendor, SimulatorCounters>();
  const groundTruth: GroundTruthSet[] = [];
  for (const [vendor, simulator] of stack.simulators) {
    counters.set(vendor, simulator.counters());
    groundTruth.push({ vendor, source: "default", served: simulator.groundTruth() });
  }
  await stack.destroy();
  // Kept beside the logs, so a failure can be traced after the run.
  writeFileSync(join(stack.dirs.root, "ground-truth.json"), JSON.stringify(groundTruth));
  writeFileSync(
    join(stack.dirs.root, "counters.json"),
    JSON.stringify(Object.fromEntries(counters), null, 2),
  );

  say("chaos: checking the findings log, quotas and captured output");
  result.checks = await runChecks({
    logPath: stack.logPath,
    groundTruth,
    counters,
    scanDirs: [stack.dirs.logs, stack.dirs.data, stack.dirs.state, stack.dirs.redis],
    secretForms: secretForms(result.plan.credentials),
  });
}

/** Waits until every vendor has a lock holder, so steps find targets. */
async function waitForFirstLocks(stack: ChaosStack) {
  const deadline = Date.now() + FIRST_LOCK_TIMEOUT_MS;
  while (VENDORS.some((vendor) => !stack.tracker.holder(vendor))) {
    if (Date.now() > deadline) {
      const missing = VENDORS.filter((vendor) => !stack.tracker.holder(vendor));
      throw new Error(
        `no lock.acquired within ${FIRST_LOCK_TIMEOUT_MS} ms for ${missing.join(", ")}`,
      );
    }
    await Bun.sleep(100);
  }
}

async function sleepUnlessAborted(ms: number, signal: AbortSignal | undefined) {
  if (!signal) return await Bun.sleep(ms);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

function byVendor<T>(value: () => T): Record<Vendor, T> {
  return { qualys: value(), rapid7: value(), tenable: value() };
}
