// Carries out one planned chaos step on the running stack. Every wait is
// bounded: a trigger event that does not come within triggerTimeoutMs is
// recorded as missed and the step acts anyway.
import type { Vendor } from "@vulnsub/shared";
import type { TrackedEvent } from "./event-tracker.ts";
import type { ChaosStep } from "./plan.ts";
import type { ServiceSlot } from "./service-slot.ts";
import type { ChaosStack } from "./stack.ts";

/** Counts of what the run did, updated as it happens. */
export interface ChaosTally {
  /** SIGKILLs sent to the flusher or a poller. */
  kills: number;
  /** Processes started again after a kill. */
  restarts: number;
  /** Kills of the flusher after flusher.listening, before flusher.serving. */
  recoveryKills: number;
  /** Recovery kills that came too late: flusher.serving was seen first. */
  recoveryKillsLate: number;
  redisRestarts: number;
  sigstops: number;
  /** Paused holders that logged lock.lost after SIGCONT. */
  pausedHoldersLost: number;
  /** Steps whose trigger event did not come in time. */
  triggersMissed: number;
  /** Steps skipped because their target was not there. */
  stepsSkipped: number;
  epochsAdvanced: Record<Vendor, number>;
}

export function createTally(): ChaosTally {
  return {
    kills: 0,
    restarts: 0,
    recoveryKills: 0,
    recoveryKillsLate: 0,
    redisRestarts: 0,
    sigstops: 0,
    pausedHoldersLost: 0,
    triggersMissed: 0,
    stepsSkipped: 0,
    epochsAdvanced: { qualys: 0, rapid7: 0, tenable: 0 },
  };
}

export interface StepContext {
  stack: ChaosStack;
  tally: ChaosTally;
  lockStaleMs: number;
  triggerTimeoutMs: number;
  /** Receives one line per notable outcome. */
  note(line: string): void;
}

/** Runs one step; resolves when the step and its restarts are done. */
export async function executeStep(step: ChaosStep, context: StepContext) {
  switch (step.kind) {
    case "kill-flusher":
      return await killAndRestart(context.stack.flusher, step, context);
    case "kill-flusher-in-recovery":
      return await killFlusherInRecovery(step, context);
    case "kill-flusher-after-ack":
      await waitForTrigger(context, (t) => t.event.event === "batch.acked", () =>
        context.stack.flusher.signal("SIGKILL"));
      return await killAndRestart(context.stack.flusher, step, context);
    case "kill-holder":
      return await killHolder(step, context, undefined);
    case "kill-standby":
      return await killStandby(step, context);
    case "kill-holder-mid-page":
    case "kill-holder-mid-export":
      return await killHolder(step, context, "page.fetched");
    case "kill-holder-after-ack":
      return await killHolder(step, context, "batch.acked");
    case "restart-redis":
      return await restartRedis(step, context);
    case "pause-holder":
      return await pauseHolder(step, context);
  }
}

async function killAndRestart(
  slot: ServiceSlot,
  step: ChaosStep,
  context: StepContext,
) {
  if (!slot.current()) {
    context.tally.stepsSkipped++;
    context.note(`step ${step.index}: ${slot.name} is not running, skipped`);
    return;
  }
  await slot.kill();
  context.tally.kills++;
  await Bun.sleep(step.restartDelayMs);
  if (!slot.current()) {
    slot.start();
    context.tally.restarts++;
  }
}

/**
 * Kills the flusher, restarts it, and kills the new run again right after
 * flusher.listening (the gRPC port is bound, recovery of the log and its
 * side files is running), then restarts it once more.
 */
async function killFlusherInRecovery(step: ChaosStep, context: StepContext) {
  const { stack, tally } = context;
  await killAndRestart(stack.flusher, step, context);
  const process = stack.flusher.current();
  if (!process) return;

  const listening = await process
    .waitForEvent((e) => e.event === "flusher.listening", context.triggerTimeoutMs)
    .catch(() => undefined);
  if (!listening) tally.triggersMissed++;
  await Bun.sleep(step.delayMs);
  const serving = process.events().some((e) => e.event === "flusher.serving");
  await stack.flusher.kill();
  tally.kills++;
  tally.recoveryKills++;
  if (serving) {
    tally.recoveryKillsLate++;
    context.note(`step ${step.index}: flusher was serving before the recovery kill`);
  }
  await Bun.sleep(step.restartDelayMs);
  if (!stack.flusher.current()) {
    stack.flusher.start();
    tally.restarts++;
  }
}

/**
 * Kills the holder of the vendor's job lock, at once or when it logs
 * `trigger`. After page.fetched the kill waits delayMs, so it lands in the
 * next fetch or send. After batch.acked it is sent from the event handler,
 * before the poller handles another ack.
 */
async function killHolder(
  step: ChaosStep,
  context: StepContext,
  trigger: "page.fetched" | "batch.acked" | undefined,
) {
  const slot = await findHolderSlot(step.vendor, context);
  if (!slot) {
    context.tally.stepsSkipped++;
    context.note(`step ${step.index}: no ${step.vendor} lock holder, skipped`);
    return;
  }
  if (trigger) {
    const ref = slot.currentRef();
    const fromHolder = (t: TrackedEvent) =>
      t.event.event === trigger &&
      t.source.name === ref?.name &&
      t.source.run === ref.run;
    const killNow = trigger === "batch.acked" || step.delayMs === 0;
    await waitForTrigger(context, fromHolder, () => {
      if (killNow) slot.signal("SIGKILL");
    });
    if (!killNow) await Bun.sleep(step.delayMs);
  }
  await killAndRestart(slot, step, context);
}

async function killStandby(step: ChaosStep, context: StepContext) {
  const holder = context.stack.tracker.holder(step.vendor);
  const standby = context.stack
    .pollersOf(step.vendor)
    .find((slot) => slot.current() && slot.name !== holder?.source.name);
  if (!standby) {
    context.tally.stepsSkipped++;
    context.note(`step ${step.index}: no running ${step.vendor} standby, skipped`);
    return;
  }
  await killAndRestart(standby, step, context);
}

/** SIGKILLs redis-server and starts it again on the same port. */
async function restartRedis(step: ChaosStep, context: StepContext) {
  await context.stack.redis.kill();
  await Bun.sleep(step.delayMs);
  await context.stack.redis.start();
  context.tally.redisRestarts++;
}

/**
 * SIGSTOPs the lock holder for lockStaleMs + delayMs, so a standby takes
 * the lock over, then SIGCONTs it. The resumed process must notice the
 * loss; a batch it still sends carries an old fencing token, which the
 * flusher rejects. The log checks at the end catch any harm either way.
 */
async function pauseHolder(step: ChaosStep, context: StepContext) {
  const slot = await findHolderSlot(step.vendor, context);
  const ref = slot?.currentRef();
  if (!slot || !ref) {
    context.tally.stepsSkipped++;
    context.note(`step ${step.index}: no ${step.vendor} lock holder to pause`);
    return;
  }
  slot.signal("SIGSTOP");
  context.tally.sigstops++;
  await Bun.sleep(context.lockStaleMs + step.delayMs);

  const lost = context.stack.tracker.waitFor(
    (t) =>
      t.source.name === ref.name &&
      t.source.run === ref.run &&
      t.event.event === "lock.lost",
    context.triggerTimeoutMs,
  );
  slot.signal("SIGCONT");
  if (await lost) context.tally.pausedHoldersLost++;
}

async function findHolderSlot(
  vendor: Vendor,
  context: StepContext,
): Promise<ServiceSlot | undefined> {
  const { tracker } = context.stack;
  if (!tracker.holder(vendor)) {
    await tracker.waitFor(
      (t) => t.source.vendor === vendor && t.event.event === "lock.acquired",
      context.triggerTimeoutMs,
    );
  }
  const holder = tracker.holder(vendor);
  const slot = context.stack.pollersOf(vendor).find((s) => s.name === holder?.source.name);
  return slot?.currentRef()?.run === holder?.source.run ? slot : undefined;
}

async function waitForTrigger(
  context: StepContext,
  match: (tracked: TrackedEvent) => boolean,
  onMatch: () => void,
) {
  const seen = await context.stack.tracker.waitFor(
    match,
    context.triggerTimeoutMs,
    onMatch,
  );
  if (!seen) context.tally.triggersMissed++;
}
