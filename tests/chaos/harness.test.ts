// Unit tests of the chaos harness itself: the plan is a pure function of
// the seed and options, the arguments parse as documented, and the secret
// scan finds every planted copy.
import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  formatReplayCommand,
  parseChaosArgs,
  presetOptions,
} from "../../scripts/chaos/options.ts";
import { createChaosPlan, plannedKills } from "../../scripts/chaos/plan.ts";
import { scanForSecrets } from "../../scripts/chaos/secret-scan.ts";
import { secretForms } from "../../scripts/chaos/simulators.ts";

let scratch: string | undefined;

afterEach(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  scratch = undefined;
});

describe("chaos plan", () => {
  test("same seed gives same plan", () => {
    const first = createChaosPlan(presetOptions("default", 42));
    const second = createChaosPlan(presetOptions("default", 42));

    expect(second).toEqual(first);
  });

  test("other seed gives other plan", () => {
    const first = createChaosPlan(presetOptions("default", 42));
    const other = createChaosPlan(presetOptions("default", 43));

    expect(other.steps).not.toEqual(first.steps);
  });

  test("plans exactly the requested kills", () => {
    for (const kills of [1, 2, 8, 200]) {
      const plan = createChaosPlan({ ...presetOptions("long", 7), kills });
      expect(plannedKills(plan.steps)).toBe(kills);
    }
  });

  test("short plan covers every timed kill", () => {
    const plan = createChaosPlan(presetOptions("short", 5));
    const kinds = new Set(plan.steps.map((step) => step.kind));

    for (const kind of [
      "kill-holder-after-ack",
      "kill-holder-mid-page",
      "kill-holder-mid-export",
      "kill-flusher-in-recovery",
      "kill-flusher-after-ack",
      "restart-redis",
      "pause-holder",
    ] as const) {
      expect(kinds.has(kind)).toBe(true);
    }
  });

  test("short phases cover every fault profile", () => {
    const plan = createChaosPlan(presetOptions("short", 5));
    // Eight fault profiles, each followed by a calm phase.
    const first = plan.phases.slice(0, 16);
    const profiles = new Set(first.map((phase) => phase.profile));

    expect(profiles.size).toBe(9);
  });
});

describe("chaos arguments", () => {
  test("flags override the preset", () => {
    const options = parseChaosArgs(["--short", "--seed", "9", "--kills", "3"]);

    expect(options).not.toBe("help");
    if (options === "help") return;
    expect(options.mode).toBe("short");
    expect(options.seed).toBe(9);
    expect(options.kills).toBe(3);
  });

  test("replay command round-trips", () => {
    const options = parseChaosArgs(["--long", "--seed", "12", "--kills", "50"]);
    if (options === "help") throw new Error("unexpected help");
    const again = parseChaosArgs(formatReplayCommand(options).split(" ").slice(3));

    expect(again).toEqual(options);
  });

  test("bad argument throws", () => {
    expect(() => parseChaosArgs(["--kills", "many"])).toThrow("--kills");
    expect(() => parseChaosArgs(["--short", "--long"])).toThrow("exclude");
    expect(() => parseChaosArgs(["--fast"])).toThrow("unknown argument");
  });
});

describe("secret scan", () => {
  test("finds every planted copy", () => {
    scratch = mkdtempSync(join(tmpdir(), "vulnsub-secret-scan-"));
    const credentials = createChaosPlan(presetOptions("short", 1)).credentials;
    const forms = secretForms(credentials);
    mkdirSync(join(scratch, "nested"));
    writeFileSync(join(scratch, "a.log"), `x ${credentials.rapid7ApiKey} y\n`);
    writeFileSync(
      join(scratch, "nested", "b.bin"),
      `${forms[1]}${credentials.tenableSecretKey}${credentials.tenableSecretKey}`,
    );
    writeFileSync(join(scratch, "clean.log"), "nothing here\n");

    const scan = scanForSecrets([scratch], forms);

    expect(scan.filesScanned).toBe(3);
    expect(scan.occurrences).toBe(4);
    expect(scan.hits.length).toBe(3);
  });
});
