import { afterEach, describe, expect, test } from "bun:test";
import {
  ALL_STATES,
  AUTH,
  call,
  createExport,
  createManualClock,
  getChunk,
  getStatus,
  pollStatus,
  startSimulator,
  stopAll,
} from "./tenable-helpers.ts";

afterEach(stopAll);

describe("tenable simulator auth", () => {
  test("missing keys get 401 json", async () => {
    const simulator = await startSimulator();
    const response = await call(simulator, "GET", "/vulns/export/status", undefined, {});
    expect(response.status).toBe(401);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body.statusCode).toBe(401);
    expect(body.error).toBe("Unauthorized");
  });

  test("wrong secret gets 401", async () => {
    const simulator = await startSimulator();
    const response = await call(simulator, "GET", "/vulns/export/status", undefined, {
      "X-ApiKeys": "accessKey=demo-access;secretKey=wrong",
    });
    expect(response.status).toBe(401);
  });

  test("space after semicolon and lowercase name pass", async () => {
    const simulator = await startSimulator();
    const response = await call(simulator, "GET", "/vulns/export/status", undefined, {
      "x-apikeys": "accessKey=demo-access; secretKey=demo-secret",
    });
    expect(response.status).toBe(200);
  });

  test("custom credentials replace the defaults", async () => {
    const simulator = await startSimulator({
      credentials: { accessKey: "a1", secretKey: "s1" },
    });
    const denied = await call(simulator, "GET", "/vulns/export/status");
    expect(denied.status).toBe(401);
    const allowed = await call(simulator, "GET", "/vulns/export/status", undefined, {
      "X-ApiKeys": "accessKey=a1;secretKey=s1",
    });
    expect(allowed.status).toBe(200);
  });
});

describe("tenable simulator export request", () => {
  test("num_assets is clamped to 50-5000", async () => {
    const simulator = await startSimulator();
    const small = await createExport(simulator, { num_assets: 3 });
    const large = await createExport(simulator, { num_assets: 90_000 });
    expect((await getStatus(simulator, small)).num_assets_per_chunk).toBe(50);
    expect((await getStatus(simulator, large)).num_assets_per_chunk).toBe(5000);
  });

  test("non-integer num_assets gets 400", async () => {
    const simulator = await startSimulator();
    for (const value of [1.5, "many", true]) {
      const response = await call(simulator, "POST", "/vulns/export", {
        num_assets: value,
      });
      expect(response.status).toBe(400);
    }
  });

  test("since in milliseconds gets 400", async () => {
    const simulator = await startSimulator();
    const response = await call(simulator, "POST", "/vulns/export", {
      filters: { since: Date.now() },
    });
    expect(response.status).toBe(400);
  });

  test("unknown state gets 400", async () => {
    const simulator = await startSimulator();
    const response = await call(simulator, "POST", "/vulns/export", {
      filters: { state: ["OPEN", "ACTIVE"] },
    });
    expect(response.status).toBe(400);
  });

  test("invalid json body gets 400", async () => {
    const simulator = await startSimulator();
    const response = await fetch(`${simulator.url}/vulns/export`, {
      method: "POST",
      headers: AUTH,
      body: "{num_assets:",
    });
    expect(response.status).toBe(400);
  });

  test("states are case-insensitive and default to open", async () => {
    const simulator = await startSimulator();
    const lower = await createExport(simulator, {
      filters: { state: ["open", "fixed"] },
    });
    const status = await pollStatus(simulator, lower, (s) => s.status === "FINISHED");
    const last = status.at(-1)!;
    expect(last.filters.state).toEqual(["OPEN", "FIXED"]);

    const plain = await createExport(simulator, {});
    const plainStatus = await getStatus(simulator, plain);
    expect(plainStatus.filters.state).toEqual(["OPEN", "REOPENED"]);
  });

  test("default states leave fixed findings out", async () => {
    const simulator = await startSimulator();
    const uuid = await createExport(simulator, { num_assets: 500 });
    await pollStatus(simulator, uuid, (s) => s.status === "FINISHED");
    const findings = await getChunk(simulator, uuid, 1);
    expect(findings.length).toBeGreaterThan(0);
    expect(findings.some((finding) => finding.state === "FIXED")).toBe(false);
  });
});

describe("tenable simulator export lifecycle", () => {
  test("status goes queued, processing, finished", async () => {
    const clock = createManualClock();
    const simulator = await startSimulator({ processingDelayMs: 10, clock: clock.now });
    const uuid = await createExport(simulator);
    const queued = await getStatus(simulator, uuid);
    clock.advance(15);
    const processing = await getStatus(simulator, uuid);
    clock.advance(25);
    const finished = await getStatus(simulator, uuid);
    expect(queued.status).toBe("QUEUED");
    expect(processing.status).toBe("PROCESSING");
    expect(processing.chunks_available).toEqual([]);
    expect(finished.status).toBe("FINISHED");
    expect(finished.chunks_available.length).toBe(3);
  });

  test("chunks appear one by one out of order", async () => {
    const clock = createManualClock();
    const simulator = await startSimulator({
      processingDelayMs: 10,
      assets: 260,
      clock: clock.now,
    });
    const uuid = await createExport(simulator);
    clock.advance(10);
    const lists: number[][] = [];
    for (let step = 0; step < 6; step++) {
      clock.advance(10);
      lists.push((await getStatus(simulator, uuid)).chunks_available);
    }
    const final = await getStatus(simulator, uuid);
    expect(lists.map((list) => list.length)).toEqual([1, 2, 3, 4, 5, 6]);
    for (let step = 1; step < 6; step++) {
      expect(lists[step]!.slice(0, step)).toEqual(lists[step - 1]!);
    }
    expect(final.status).toBe("FINISHED");
    expect(final.total_chunks).toBe(6);
    expect(final.chunks_available).not.toEqual([1, 2, 3, 4, 5, 6]);
  });

  test("finished status carries the full object", async () => {
    const simulator = await startSimulator();
    const uuid = await createExport(simulator);
    const seen = await pollStatus(simulator, uuid, (s) => s.status === "FINISHED");
    const status = seen.at(-1)!;
    expect(status.uuid).toBe(uuid);
    expect(status.chunks_available_count).toBe(3);
    expect(status.finished_chunks).toBe(3);
    expect(status.empty_chunks_count).toBe(0);
    expect(status.chunks_failed).toEqual([]);
    expect(status.chunks_cancelled).toEqual([]);
    expect(typeof status.created).toBe("number");
  });

  test("chunk before it is ready gets 400", async () => {
    const simulator = await startSimulator({ processingDelayMs: 60_000 });
    const uuid = await createExport(simulator);
    const response = await call(simulator, "GET", `/vulns/export/${uuid}/chunks/1`);
    expect(response.status).toBe(400);
  });

  test("chunk is an octet-stream json array", async () => {
    const simulator = await startSimulator();
    const uuid = await createExport(simulator);
    await pollStatus(simulator, uuid, (s) => s.status === "FINISHED");
    const response = await call(simulator, "GET", `/vulns/export/${uuid}/chunks/2`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/octet-stream");
    const body = JSON.parse(await response.text());
    expect(Array.isArray(body)).toBe(true);
  });

  test("unknown export gets 404", async () => {
    const simulator = await startSimulator();
    const uuid = "00000000-0000-4000-8000-000000000000";
    const status = await call(simulator, "GET", `/vulns/export/${uuid}/status`);
    const chunk = await call(simulator, "GET", `/vulns/export/${uuid}/chunks/1`);
    expect(status.status).toBe(404);
    expect(chunk.status).toBe(404);
  });

  test("expired chunk and job get 404", async () => {
    const clock = createManualClock();
    const simulator = await startSimulator({
      chunkTtlMs: 60_000,
      clock: clock.now,
    });
    const uuid = await createExport(simulator);
    clock.advance(1000);
    const fresh = await call(simulator, "GET", `/vulns/export/${uuid}/chunks/1`);
    expect(fresh.status).toBe(200);
    await fresh.text();
    clock.advance(60_000);
    const chunk = await call(simulator, "GET", `/vulns/export/${uuid}/chunks/1`);
    const status = await call(simulator, "GET", `/vulns/export/${uuid}/status`);
    expect(chunk.status).toBe(404);
    expect(status.status).toBe(404);
  });

  test("cancel stops the export", async () => {
    const simulator = await startSimulator({ processingDelayMs: 60_000 });
    const uuid = await createExport(simulator);
    const response = await call(simulator, "POST", `/vulns/export/${uuid}/cancel`);
    expect(await response.json()).toEqual({ status: "CANCELLED" });
    const status = await getStatus(simulator, uuid);
    expect(status.status).toBe("CANCELLED");
    expect(status.chunks_cancelled).toEqual([1, 2, 3]);
  });

  test("job list summarises recent exports", async () => {
    const simulator = await startSimulator();
    const first = await createExport(simulator);
    const second = await createExport(simulator, { num_assets: 60 });
    const response = await call(simulator, "GET", "/vulns/export/status");
    const body = (await response.json()) as { exports: Record<string, unknown>[] };
    expect(body.exports.map((job) => job.uuid)).toEqual([first, second]);
    expect(body.exports[0]?.num_assets_per_chunk).toBe(50);
    expect(body.exports[0]?.chunks_available).toBeUndefined();
  });
});

describe("tenable simulator export limits", () => {
  test("duplicate request gets 409 with active_job_id", async () => {
    const simulator = await startSimulator({ processingDelayMs: 60_000 });
    const body = { num_assets: 50, filters: { since: 1_700_000_000, state: ALL_STATES } };
    const uuid = await createExport(simulator, body);
    const response = await call(simulator, "POST", "/vulns/export", {
      num_assets: 50,
      filters: { state: ["fixed", "open", "reopened"], since: 1_700_000_000 },
    });
    expect(response.status).toBe(409);
    const conflict = (await response.json()) as Record<string, unknown>;
    expect(conflict.active_job_id).toBe(uuid);
    expect(String(conflict.failure_reason)).toContain("ongoing export");
  });

  test("third concurrent export gets 429", async () => {
    const simulator = await startSimulator({ processingDelayMs: 60_000 });
    await createExport(simulator, { num_assets: 50 });
    await createExport(simulator, { num_assets: 60 });
    const response = await call(simulator, "POST", "/vulns/export", { num_assets: 70 });
    expect(response.status).toBe(429);
    expect(Number(response.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(simulator.counters().exports.rejectedBusy).toBe(1);
  });

  test("finished exports free their slot", async () => {
    const simulator = await startSimulator();
    const first = await createExport(simulator, { num_assets: 50 });
    const second = await createExport(simulator, { num_assets: 60 });
    await pollStatus(simulator, first, (s) => s.status === "FINISHED");
    await pollStatus(simulator, second, (s) => s.status === "FINISHED");
    const response = await call(simulator, "POST", "/vulns/export", { num_assets: 70 });
    expect(response.status).toBe(200);
  });

  test("over the rate gets nginx 429 and retry-after", async () => {
    const simulator = await startSimulator({
      rateLimit: { requests: 3, windowMs: 60_000 },
    });
    for (let i = 0; i < 3; i++) {
      const ok = await call(simulator, "GET", "/vulns/export/status");
      expect(ok.status).toBe(200);
    }
    const response = await call(simulator, "GET", "/vulns/export/status");
    expect(response.status).toBe(429);
    expect(response.headers.get("content-type")).toBe("text/html");
    expect(await response.text()).toContain("<center>nginx</center>");
    const retryAfter = Number(response.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(simulator.counters().quota.windowsExceeded).toBe(1);
  });

  test("admin routes do not count against the quota", async () => {
    const simulator = await startSimulator({
      rateLimit: { requests: 1, windowMs: 60_000 },
    });
    for (let i = 0; i < 3; i++) {
      const response = await fetch(`${simulator.url}/_sim/counters`);
      expect(response.status).toBe(200);
    }
    const api = await call(simulator, "GET", "/vulns/export/status");
    expect(api.status).toBe(200);
    expect(simulator.counters().quota.requests).toBe(1);
  });
});
