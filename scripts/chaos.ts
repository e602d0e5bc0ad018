// `bun run chaos [--seed N] [--kills N] [--short | --long] [--keep] [--plan]`
//
// Crash and fault suite. It runs the flusher and the pollers (real child
// processes) against the vendor simulators with a private redis-server.
// It SIGKILLs and restarts them at planned moments, SIGSTOPs lock holders,
// restarts Redis and switches vendor faults on and off. Then it quiesces
// and checks that nothing was lost, duplicated, invalid, over quota or
// leaked.
// Exits 0 only when every check is 0, 1 when one is not or the run failed,
// 2 on a bad argument, 130 when interrupted.
import { rmSync } from "node:fs";
import {
  CHAOS_HELP,
  CHAOS_USAGE,
  formatReplayCommand,
  parseChaosArgs,
  type ChaosOptions,
} from "./chaos/options.ts";
import { createChaosPlan, formatPlan, plannedKills } from "./chaos/plan.ts";
import { formatChaosReport } from "./chaos/report.ts";
import { runChaos } from "./chaos/run.ts";

if (import.meta.main) process.exit(await main(process.argv.slice(2)));

async function main(argv: string[]): Promise<number> {
  let options: ChaosOptions | "help";
  try {
    options = parseChaosArgs(argv);
  } catch (error) {
    console.error(`chaos: ${(error as Error).message}\n${CHAOS_USAGE}`);
    return 2;
  }
  if (options === "help") {
    console.log(CHAOS_HELP);
    return 0;
  }

  const plan = createChaosPlan(options);
  console.log(`chaos: seed ${options.seed}, ${plannedKills(plan.steps)} kills planned`);
  console.log(`chaos: replay with: ${formatReplayCommand(options)}`);
  if (options.planOnly) {
    for (const line of formatPlan(plan)) console.log(line);
    return 0;
  }

  const controller = new AbortController();
  const removeSignals = handleSignals(controller);
  const result = await runChaos({
    options,
    say: (line) => console.log(line),
    signal: controller.signal,
  });
  removeSignals();

  for (const line of formatChaosReport(result)) console.log(line);
  if (result.passed && !options.keep) {
    rmSync(result.dirs.root, { recursive: true, force: true });
    console.log(`chaos: removed ${result.dirs.root} (pass --keep to keep it)`);
  }
  if (controller.signal.aborted) return 130;
  return result.passed ? 0 : 1;
}

/**
 * Ends the run early on the first SIGINT or SIGTERM, still cleaning up. A
 * second signal a second or more later exits at once, and the exit
 * handlers SIGKILL every child process group and redis-server.
 */
function handleSignals(controller: AbortController) {
  let firstAt = 0;
  const handler = (signal: NodeJS.Signals) => {
    if (firstAt === 0) {
      firstAt = Date.now();
      console.error(`chaos: ${signal}: stopping (repeat to kill everything now)`);
      controller.abort();
      return;
    }
    if (Date.now() - firstAt >= 1_000) process.exit(130);
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return () => {
    process.removeListener("SIGINT", handler);
    process.removeListener("SIGTERM", handler);
  };
}
