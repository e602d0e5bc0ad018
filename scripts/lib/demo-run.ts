// One demo run once Redis is there: start the stack, follow progress until
// every vendor has synced (or Ctrl-C, a failure or the timeout), drain and
// stop, then summarise and check the findings log.
import type { Vendor } from "@vulnsub/shared";
import { verifyLog, formatVerifyResult } from "../verify-log.ts";
import {
  createProgressBoard,
  createProgressView,
  describeCycleEvent,
  isCycleCompleted,
  type ProgressBoard,
  type ProgressView,
} from "./demo-progress.ts";
import { startDemoStack, type DemoStack } from "./demo-stack.ts";
import {
  formatSeconds,
  formatSummary,
  writeSummaryFiles,
  type DemoSummary,
  type VendorSummary,
} from "./demo-summary.ts";
import { deleteKeysWithPrefix } from "./ensure-redis.ts";
import type { GroundTruthSet } from "./ground-truth.ts";
import {
  describeExit,
  handleStopSignals,
  type JsonEvent,
} from "./processes.ts";

export interface DemoRunConfig {
  follow: boolean;
  vendors: Vendor[];
  seed: number;
  assets: number;
  findingsPerAsset: number;
  pageSize: number;
  rateLimit: number;
  rateWindowMs: number;
  pollIntervalMs: number;
  timeoutMs: number;
}

export interface DemoRunInput {
  config: DemoRunConfig;
  dataDir: string;
  redisUrl: string;
  redisKeyPrefix: string;
  say: (line: string) => void;
}

type Outcome =
  | { kind: "synced" }
  | { kind: "interrupted"; signal: string }
  | { kind: "failed"; reason: string };

/** Pollers get 80 % of the quota: the margin for request latency. */
const POLLER_QUOTA_SHARE = 0.8;
/** Without --follow no second cycle may start before the demo stops. */
const NO_SECOND_CYCLE_MS = 3_600_000;
const RECENT_LINES = 20;

/** Runs the demo and returns the process exit code. */
export async function runDemo(input: DemoRunInput): Promise<number> {
  const { config, say } = input;
  const startedAt = Date.now();
  const board = createProgressBoard(config.vendors);
  let view: ProgressView | undefined;
  const note = (line: string) => (view ? view.note(line) : say(line));
  const recent = new Map<string, string[]>();
  let stopping = false;
  // Set when a poller works on a cycle after the stop began (see finish).
  let busyWhileStopping = false;
  let settle: (outcome: Outcome) => void = () => {};
  const outcome = new Promise<Outcome>((resolve) => (settle = resolve));
  let stack: DemoStack | undefined;

  const removeSignals = handleStopSignals({
    onStop: (signal) => {
      note(`${signal}: stopping every process (repeat to kill them now)`);
      settle({ kind: "interrupted", signal });
    },
    onForce: (signal) => note(`${signal}: killing every process`),
  });
  const onPollerEvent = (vendor: Vendor, event: JsonEvent) => {
    if (stopping && isCycleWork(event)) busyWhileStopping = true;
    board.apply(vendor, event);
    const line = describeCycleEvent(vendor, event);
    if (line) note(line);
    if (!isCycleCompleted(event)) return;
    if (config.follow && stack) {
      // A new epoch gives the next incremental cycle changed findings.
      stack.advanceEpoch(vendor).catch((error: Error) => {
        note(`${vendor}: simulator epoch not advanced: ${error.message}`);
      });
    }
    if (!config.follow && board.allSynced()) settle({ kind: "synced" });
  };

  try {
    stack = await startDemoStack({
      dataDir: input.dataDir,
      redisUrl: input.redisUrl,
      redisKeyPrefix: input.redisKeyPrefix,
      vendors: config.vendors,
      seed: config.seed,
      assets: config.assets,
      findingsPerAsset: config.findingsPerAsset,
      quota: { requests: config.rateLimit, windowMs: config.rateWindowMs },
      pageSize: {
        qualys: config.pageSize,
        rapid7: config.pageSize,
        // Tenable accepts 50 to 5000 assets per export chunk.
        tenable: Math.max(50, config.pageSize),
      },
      pollerRequestsPerWindow: Math.max(
        1,
        Math.floor(config.rateLimit * POLLER_QUOTA_SHARE),
      ),
      pollIntervalMs: config.follow
        ? config.pollIntervalMs
        : NO_SECOND_CYCLE_MS,
      onPollerEvent,
      onText: (name, line) => remember(recent, name, line),
      onEvent: (name, event) => {
        if (event.level === "error" || event.level === "fatal") {
          remember(recent, name, JSON.stringify(event));
        }
      },
    });
  } catch (error) {
    removeSignals();
    say(`demo: start failed: ${(error as Error).message}`);
    printRecent(recent, say);
    return 1;
  }

  say(`flusher listening on ${stack.flusherAddress}; pollers started`);
  view = createProgressView(board, {
    tty: process.stdout.isTTY === true,
    write: (text) => process.stdout.write(text),
  });
  for (const service of stack.processes()) {
    void service.exited.then((status) => {
      if (stopping) return;
      settle({
        kind: "failed",
        reason: `${service.name} stopped unexpectedly (${describeExit(status)})`,
      });
    });
  }
  const timer = config.follow
    ? undefined
    : setTimeout(
        () => settle({ kind: "failed", reason: timeoutReason(board, config) }),
        config.timeoutMs,
      );

  const result = await outcome;
  stopping = true;
  const idleAtStop = board.all().every((p) => p.state === "synced");
  clearTimeout(timer);
  view.stop();
  view = undefined;
  say(describeOutcome(result));
  if (result.kind === "failed") printRecent(recent, say);

  const code = await finish(input, stack, board, result, {
    startedAt,
    idle: () => idleAtStop && !busyWhileStopping,
  });
  removeSignals();
  return code;
}

async function finish(
  input: DemoRunInput,
  stack: DemoStack,
  board: ProgressBoard,
  outcome: Outcome,
  run: { startedAt: number; idle: () => boolean },
): Promise<number> {
  const { config, say } = input;
  say("stopping pollers and flusher");
  await stack.stopPollers();
  await stack.flusher.stop();
  // Lost versions are counted only when every poller was between cycles
  // from the stop on. A poller stopped mid-cycle leaves served pages
  // unacked, and its next run fetches them again.
  const idle = run.idle();

  const vendors: VendorSummary[] = [];
  const groundTruth: GroundTruthSet[] = [];
  for (const vendor of config.vendors) {
    const counters = await stack.counters(vendor).catch((error: Error) => {
      say(`${vendor} simulator counters: ${error.message}`);
      return null;
    });
    const truth = await stack.groundTruth(vendor).catch((error: Error) => {
      say(`${vendor} simulator ground truth: ${error.message}`);
      return null;
    });
    if (truth) groundTruth.push(truth);
    vendors.push({
      vendor,
      progress: board.get(vendor),
      counters,
      served: truth?.served.length ?? null,
    });
  }
  await stack.stop();
  await deleteKeysWithPrefix(input.redisUrl, input.redisKeyPrefix).catch(
    (error: Error) => {
      say(`redis keys ${input.redisKeyPrefix}:* not deleted: ${error.message}`);
    },
  );

  const checkLost = idle && groundTruth.length === config.vendors.length;
  const verify = await verifyLog({
    logPath: stack.logPath,
    groundTruth: checkLost ? groundTruth : undefined,
  }).catch((error: Error) => {
    say(`verify-log: ${error.message}`);
    return null;
  });
  const quotaOk = vendors.every((v) => v.counters?.quota.windowsExceeded === 0);
  const summary: DemoSummary = {
    dataDir: input.dataDir,
    logPath: stack.logPath,
    durationMs: Date.now() - run.startedAt,
    completed: board.allSynced(),
    vendors,
    verify,
    // An interrupted run cannot be checked for lost versions; the other
    // checks still apply.
    ok:
      outcome.kind !== "failed" &&
      (checkLost || outcome.kind === "interrupted") &&
      quotaOk &&
      verify?.ok === true,
  };
  writeSummaryFiles(summary, groundTruth);

  for (const line of formatSummary(summary, process.cwd())) say(line);
  if (verify) for (const line of formatVerifyResult(verify)) say(line);
  if (!checkLost)
    say("lost and unexpected not checked: no complete sync to compare");
  if (!quotaOk)
    say("quota: a simulator saw its quota exceeded (or could not be asked)");
  return exitCode(outcome, config.follow, summary.ok);
}

function exitCode(outcome: Outcome, follow: boolean, ok: boolean): number {
  if (outcome.kind === "interrupted" && !follow) return 130;
  return ok ? 0 : 1;
}

function isCycleWork(event: JsonEvent): boolean {
  return (
    event.event === "lock.acquired" ||
    event.event === "page.fetched" ||
    event.event === "batch.acked"
  );
}

function describeOutcome(outcome: Outcome): string {
  switch (outcome.kind) {
    case "synced":
      return "every vendor completed a full sync";
    case "interrupted":
      return `stopped by ${outcome.signal}`;
    case "failed":
      return `demo failed: ${outcome.reason}`;
  }
}

function timeoutReason(board: ProgressBoard, config: DemoRunConfig): string {
  const pending = board.all().filter((p) => p.cyclesCompleted === 0);
  const names = pending.map(
    (p) => `${p.vendor} (${p.state}${p.lastError ? `: ${p.lastError}` : ""})`,
  );
  return `no full sync within ${formatSeconds(config.timeoutMs)} for ${names.join(", ")}`;
}

function remember(recent: Map<string, string[]>, name: string, line: string) {
  const lines = recent.get(name) ?? [];
  lines.push(line);
  if (lines.length > RECENT_LINES) lines.shift();
  recent.set(name, lines);
}

function printRecent(
  recent: Map<string, string[]>,
  say: (line: string) => void,
) {
  for (const [name, lines] of recent) {
    say(`last errors and non-JSON output of ${name}:`);
    for (const line of lines) say(`  ${line}`);
  }
}
