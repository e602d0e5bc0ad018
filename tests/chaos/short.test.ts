// The chaos suite in short mode (`bun run chaos --short`) as a test: a
// handful of SIGKILLs, a Redis restart and a SIGSTOPped lock holder while
// vendor faults switch on and off, then every check must be 0. The seed is
// fixed so a failure replays; CHAOS_SEED picks another one.
import { afterAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { presetOptions } from "../../scripts/chaos/options.ts";
import { formatChaosReport } from "../../scripts/chaos/report.ts";
import { runChaos, type ChaosResult } from "../../scripts/chaos/run.ts";

const SEED = Number(process.env.CHAOS_SEED ?? 20_251_204);
const TIMEOUT_MS = 6 * 60_000;

let result: ChaosResult | undefined;

afterAll(() => {
  if (!result) return;
  // A failing run keeps its logs and data for the report's replay.
  if (result.passed) rmSync(result.dirs.root, { recursive: true, force: true });
  else console.error(formatChaosReport(result).join("\n"));
});

describe("chaos short run", () => {
  test("kills and faults lose nothing", async () => {
    const lines: string[] = [];
    result = await runChaos({
      options: presetOptions("short", SEED),
      say: (line) => lines.push(line),
    });
    const checks = result.checks;

    expect(result.error).toBeNull();
    expect(result.quiesce?.ok).toBe(true);
    expect(checks?.lost).toBe(0);
    expect(checks?.duplicated).toBe(0);
    expect(checks?.invalid).toBe(0);
    expect(checks?.unexpected).toBe(0);
    expect(checks?.quotaExceeded).toBe(0);
    expect(checks?.secrets.occurrences).toBe(0);
    expect(result.tally.kills).toBeGreaterThanOrEqual(6);
    expect(result.tally.redisRestarts).toBeGreaterThanOrEqual(1);
    expect(result.tally.sigstops).toBeGreaterThanOrEqual(1);
  }, TIMEOUT_MS);
});
