// The chaos harness's service slot when a run cannot start or its exit
// event never comes: the harness must record the run as ended and go on,
// never wait forever.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEventTracker } from "../../scripts/chaos/event-tracker.ts";
import { createServiceSlot } from "../../scripts/chaos/service-slot.ts";

const logDirs: string[] = [];

// Removed at the end only: the log stream of a failed spawn opens its
// file after the test has already returned.
afterAll(() => {
  for (const dir of logDirs) rmSync(dir, { recursive: true, force: true });
});

function createSlot(command: string[], notes: string[]) {
  const logDir = mkdtempSync(join(tmpdir(), "vulnsub-slot-"));
  logDirs.push(logDir);
  return createServiceSlot(
    {
      name: "probe",
      vendor: null,
      command,
      cwd: logDir,
      env: process.env,
      logDir,
      note: (line) => notes.push(line),
    },
    createEventTracker(),
  );
}

describe("service slot", () => {
  test("failed spawn ends the run", async () => {
    const notes: string[] = [];
    const slot = createSlot([join(tmpdir(), "no-such-program-vulnsub")], notes);

    slot.start();
    const killed = await slot.kill();

    expect(slot.current()).toBeUndefined();
    expect(slot.exits()).toEqual([{ run: 1, status: { code: 127, signal: null } }]);
    expect(killed).toBeUndefined();
    expect(notes.some((line) => line.includes("spawn failed"))).toBe(true);
  });

  test("kill ends a running process", async () => {
    const slot = createSlot([process.execPath, "-e", "setInterval(() => {}, 1000)"], []);

    slot.start();
    const status = await slot.kill();

    expect(status?.signal).toBe("SIGKILL");
    expect(slot.current()).toBeUndefined();
    expect(slot.runs()).toBe(1);
  });

  test("restart after kill starts run 2", async () => {
    const slot = createSlot([process.execPath, "-e", "setInterval(() => {}, 1000)"], []);

    slot.start();
    await slot.kill();
    slot.start();
    const status = await slot.stop(5_000);

    expect(slot.runs()).toBe(2);
    expect(status?.signal).toBe("SIGTERM");
    expect(slot.exits().map((exit) => exit.run)).toEqual([1, 2]);
  });
});
