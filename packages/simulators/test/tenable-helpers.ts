import {
  startTenableSimulator,
  type TenableSimulatorHandle,
  type TenableSimulatorOptions,
} from "../src/tenable.ts";

/** Shared setup of the Tenable simulator tests. */

export const AUTH = {
  "X-ApiKeys": "accessKey=demo-access;secretKey=demo-secret",
};

export const ALL_STATES = ["OPEN", "REOPENED", "FIXED"];

const running: TenableSimulatorHandle[] = [];

/** Starts a simulator with a high rate limit; stopAll() stops it. */
export async function startSimulator(
  options: Partial<TenableSimulatorOptions> = {},
): Promise<TenableSimulatorHandle> {
  const simulator = await startTenableSimulator({
    seed: 7,
    assets: 120,
    findingsPerAsset: 4,
    rateLimit: { requests: 10_000, windowMs: 60_000 },
    processingDelayMs: 5,
    ...options,
  });
  running.push(simulator);
  return simulator;
}

export async function stopAll() {
  await Promise.all(running.splice(0).map((simulator) => simulator.stop()));
}

export type ManualClock = ReturnType<typeof createManualClock>;

/** Creates a clock the test moves by hand, in epoch milliseconds. */
export function createManualClock(startMs = Date.now()) {
  let nowMs = startMs;
  return {
    now: () => nowMs,
    advance(ms: number) {
      nowMs += ms;
    },
  };
}

/** Calls the API with valid keys; `body` is sent as JSON. */
export function call(
  simulator: TenableSimulatorHandle,
  method: "GET" | "POST",
  path: string,
  body?: unknown,
  headers: Record<string, string> = AUTH,
): Promise<Response> {
  return fetch(`${simulator.url}${path}`, {
    method,
    headers: { ...headers, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** Requests an export and returns its uuid. */
export async function createExport(
  simulator: TenableSimulatorHandle,
  body: unknown = { num_assets: 50, filters: { state: ALL_STATES } },
): Promise<string> {
  const response = await call(simulator, "POST", "/vulns/export", body);
  if (response.status !== 200) {
    throw new Error(`export request: HTTP ${response.status}`);
  }
  const created = (await response.json()) as { export_uuid: string };
  return created.export_uuid;
}

export interface StatusBody {
  uuid: string;
  status: string;
  chunks_available: number[];
  chunks_failed: number[];
  chunks_cancelled: number[];
  total_chunks: number;
  chunks_available_count: number;
  empty_chunks_count: number;
  finished_chunks: number;
  num_assets_per_chunk: number;
  filters: Record<string, unknown>;
  created: number;
  reason?: string;
}

export async function getStatus(
  simulator: TenableSimulatorHandle,
  uuid: string,
): Promise<StatusBody> {
  const response = await call(simulator, "GET", `/vulns/export/${uuid}/status`);
  return (await response.json()) as StatusBody;
}

/**
 * Polls the status until `done` holds, at most `maxPolls` times, 5 ms
 * apart: slept, or moved on `clock` when one is given. Returns every
 * status seen.
 */
export async function pollStatus(
  simulator: TenableSimulatorHandle,
  uuid: string,
  done: (status: StatusBody) => boolean,
  options: { maxPolls?: number; clock?: ManualClock } = {},
): Promise<StatusBody[]> {
  const seen: StatusBody[] = [];
  const maxPolls = options.maxPolls ?? 400;
  for (let poll = 0; poll < maxPolls; poll++) {
    const status = await getStatus(simulator, uuid);
    seen.push(status);
    if (done(status)) return seen;
    if (options.clock) options.clock.advance(5);
    else await Bun.sleep(5);
  }
  throw new Error(`export ${uuid}: condition not met after ${maxPolls} polls`);
}

/** Downloads a chunk and parses it; throws when the body is not JSON. */
export async function getChunk(
  simulator: TenableSimulatorHandle,
  uuid: string,
  chunkId: number,
): Promise<Record<string, any>[]> {
  const response = await call(
    simulator,
    "GET",
    `/vulns/export/${uuid}/chunks/${chunkId}`,
  );
  return JSON.parse(await response.text());
}
