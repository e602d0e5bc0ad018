// The end of the chaos phase: faults are off and epochs frozen (the
// background is stopped first), every process runs again, and each vendor
// completes one whole cycle that started after this point. Versions served
// during an unfinished cycle are then served again and logged, so the
// ground truth and the log can be compared.
import { VENDORS, type Vendor } from "@vulnsub/shared";
import { isCycleCompleted } from "./event-tracker.ts";
import type { ChaosStack } from "./stack.ts";

export interface QuiesceResult {
  ok: boolean;
  /** Reason the stack did not quiesce, naming the vendors still waiting. */
  failure?: string;
  durationMs: number;
}

/** Brings every process back and waits for one clean cycle per vendor. */
export async function quiesce(
  stack: ChaosStack,
  timeoutMs: number,
  note: (line: string) => void,
): Promise<QuiesceResult> {
  const startedAt = Date.now();
  const deadline = startedAt + timeoutMs;
  for (const slot of [stack.flusher, ...stack.pollers]) slot.signal("SIGCONT");
  if (!stack.redis.isRunning()) await stack.redis.start();
  await stack.startFlusher(timeoutMs);
  stack.startMissingPollers();

  const cleanFrom = Date.now();
  const done = new Set<Vendor>();
  const unsubscribe = stack.tracker.subscribe((tracked) => {
    const vendor = tracked.source.vendor;
    if (!vendor || !isCycleCompleted(tracked.event)) return;
    const durationMs = tracked.event.durationMs as number;
    if (tracked.receivedAtMs - durationMs >= cleanFrom) done.add(vendor);
  });

  try {
    while (done.size < VENDORS.length && Date.now() < deadline) {
      await Bun.sleep(250);
      restartExited(stack, note);
    }
  } finally {
    unsubscribe();
  }

  const durationMs = Date.now() - startedAt;
  const waiting = VENDORS.filter((vendor) => !done.has(vendor));
  if (waiting.length === 0) return { ok: true, durationMs };
  return {
    ok: false,
    failure:
      `no complete cycle within ${timeoutMs} ms after quiescing for ` +
      waiting.join(", "),
    durationMs,
  };
}

/** Restarts a process that exits while the stack should be calm. */
function restartExited(stack: ChaosStack, note: (line: string) => void) {
  if (!stack.flusher.current()) {
    note("flusher exited while quiescing; restarting");
    stack.flusher.start();
  }
  for (const slot of stack.pollers) {
    if (slot.current()) continue;
    note(`${slot.name} exited while quiescing; restarting`);
    slot.start();
  }
}
