// Formats a chaos result: the checks that decide the exit code, the counts
// of what the run did, where the logs are, and one summary line.
import { VENDORS } from "@vulnsub/shared";
import { describeExit } from "../lib/processes.ts";
import { formatVerifyResult } from "../verify-log.ts";
import { formatReplayCommand } from "./options.ts";
import type { ChaosResult } from "./run.ts";

/** Formats the full report, the summary line last. */
export function formatChaosReport(result: ChaosResult): string[] {
  const lines = [
    `chaos seed ${result.options.seed} (${result.options.mode} mode)`,
    `replay: ${formatReplayCommand(result.options)}`,
  ];
  if (result.error) lines.push(`run failed: ${result.error}`);
  lines.push(...formatChecks(result), ...formatActivity(result));
  lines.push(...formatStops(result));
  lines.push(`logs and data: ${result.dirs.root}`);
  lines.push(formatChaosSummary(result));
  return lines;
}

/** One line: the verdict, the five checks and the main counts. */
export function formatChaosSummary(result: ChaosResult): string {
  const checks = result.checks;
  const figure = (value: number | undefined) => (value === undefined ? "n/a" : String(value));
  const takeovers = VENDORS.reduce((sum, vendor) => sum + result.takeovers[vendor], 0);
  return (
    `chaos ${result.passed ? "PASSED" : "FAILED"} seed=${result.options.seed}: ` +
    `lost ${figure(checks?.lost)}, duplicated ${figure(checks?.duplicated)}, ` +
    `invalid ${figure(checks?.invalid)}, quota ${figure(checks?.quotaExceeded)}, ` +
    `secrets ${figure(checks?.secrets.occurrences)} ` +
    `(unexpected ${figure(checks?.unexpected)}); ` +
    `kills ${result.tally.kills}, restarts ${result.tally.restarts}, ` +
    `takeovers ${takeovers}, redis restarts ${result.tally.redisRestarts}, ` +
    `sigstops ${result.tally.sigstops}, faults ${figure(checks?.faults.total)}, ` +
    `${formatDuration(result.durationMs)}`
  );
}

function formatChecks(result: ChaosResult): string[] {
  const checks = result.checks;
  if (!checks) return ["checks: not run"];
  const mark = (value: number) => (value === 0 ? "ok" : "FAIL");
  const lines = [
    "checks (each must be 0):",
    `  lost        ${checks.lost}  ${mark(checks.lost)}`,
    `  duplicated  ${checks.duplicated}  ${mark(checks.duplicated)}`,
    `  invalid     ${checks.invalid}  ${mark(checks.invalid)}`,
    `  unexpected  ${checks.unexpected}  ${mark(checks.unexpected)}`,
    `  quota       ${checks.quotaExceeded}  ${mark(checks.quotaExceeded)}`,
    `  secrets     ${checks.secrets.occurrences}  ${mark(checks.secrets.occurrences)}`,
  ];
  for (const vendor of VENDORS) {
    const quota = checks.quotaByVendor[vendor];
    if (!quota) continue;
    lines.push(
      `  quota ${vendor.padEnd(8)} ${quota.requests} requests, max ` +
        `${quota.maxInWindow} of ${quota.limit} per ${quota.windowMs} ms, ` +
        `${quota.windowsExceeded} over`,
    );
  }
  for (const hit of checks.secrets.hits) {
    lines.push(`  secret form ${hit.formIndex} found ${hit.occurrences}x in ${hit.path}`);
  }
  if (!checks.verify.ok) lines.push(...formatVerifyResult(checks.verify).map((l) => `  ${l}`));
  return lines;
}

function formatActivity(result: ChaosResult): string[] {
  const { tally } = result;
  const perVendor = (values: Record<string, number>) =>
    VENDORS.map((vendor) => `${vendor} ${values[vendor] ?? 0}`).join(", ");
  const lines = [
    "activity:",
    `  steps       ${result.stepsRun} of ${result.plan.steps.length}` +
      (result.stoppedEarly ? " (stopped early at the time cap)" : ""),
    `  kills       ${tally.kills} (flusher in recovery ${tally.recoveryKills}, ` +
      `of which after serving ${tally.recoveryKillsLate})`,
    `  restarts    ${tally.restarts}`,
    `  takeovers   ${perVendor(result.takeovers)}`,
    `  redis       ${tally.redisRestarts} restarts`,
    `  sigstops    ${tally.sigstops} (holder logged lock.lost after SIGCONT: ` +
      `${tally.pausedHoldersLost}; streams rejected for a stale fencing ` +
      `token: ${result.staleTokenRejections})`,
    `  epochs      ${perVendor(tally.epochsAdvanced)}`,
    `  cycles      completed ${perVendor(result.cyclesCompleted)}; ` +
      `failed ${perVendor(result.cyclesFailed)}`,
    `  phases      ${result.phasesApplied} fault phases applied`,
    `  triggers    ${tally.triggersMissed} not seen in time, ` +
      `${tally.stepsSkipped} steps skipped (no target)`,
  ];
  const faults = result.checks?.faults;
  if (faults) {
    const kinds = Object.entries(faults.byKind)
      .map(([kind, count]) => `${kind} ${count}`)
      .join(", ");
    lines.push(`  faults      ${faults.total} injected: ${kinds || "none"}`);
    lines.push(
      `  tenable     ${faults.chunksExpired} chunks expired, ` +
        `${faults.exportsFailed} exports ended in ERROR`,
    );
  }
  for (const exit of result.unexpectedExits) {
    lines.push(
      `  exited by itself: ${exit.name} run ${exit.run} ` +
        `(code ${exit.code}, signal ${exit.signal}), see logs/${exit.logFile}`,
    );
  }
  if (result.quiesce) {
    lines.push(`  quiesce     ${result.quiesce.ok ? "ok" : result.quiesce.failure} ` +
      `in ${formatDuration(result.quiesce.durationMs)}`);
  }
  return lines;
}

function formatStops(result: ChaosResult): string[] {
  const unclean = [...result.stopStatuses].filter(
    ([, status]) => status && (status.code !== 0 || status.signal !== null),
  );
  if (unclean.length === 0) return [];
  return [
    "graceful stop: not every process exited with 0",
    ...unclean.map(([name, status]) => `  ${name}: ${describeExit(status!)}`),
  ];
}

function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, "0")}s`;
}
