import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";

// Runs every bench at its tiny --smoke size so the scripts keep working.
// The figures of a smoke run mean nothing and are not checked; the exit
// code and the machine line are. REDIS_URL comes from scripts/test.ts.
const REPO_DIR = resolve(import.meta.dir, "../..");
const BENCHES = ["flusher", "dedup", "restart", "quota", "e2e", "qualys-xml"];

describe("bench smoke runs", () => {
  for (const bench of BENCHES) {
    test(`${bench} --smoke exits 0`, () => {
      const run = spawnSync(
        "bun",
        ["scripts/bench/index.ts", bench, "--smoke"],
        { cwd: REPO_DIR, encoding: "utf8", timeout: 120_000 },
      );
      const output = `${run.stdout}\n${run.stderr}`;
      expect(run.error).toBeUndefined();
      expect(run.status, output.slice(-2000)).toBe(0);
      expect(output).toContain("machine:");
    }, 150_000);
  }
});
