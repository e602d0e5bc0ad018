import { pageKeys } from "./fake-adapter.ts";

/**
 * A vendor API for process tests: GET /pages/N returns `{"keys": [...]}`
 * with the finding keys of page N (see pageKeys). It records every request
 * (path and arrival time) and can hold page responses until released.
 */
export interface FakeVendor {
  readonly url: string;
  /** Arrival time (ms, performance clock) and path of every request. */
  readonly requests: { atMs: number; path: string; auth: string }[];
  /** Pages requested, in order. */
  pagesRequested(): number[];
  /** Delay each page response by `ms`. */
  setPageDelayMs(ms: number): void;
  stop(): Promise<void>;
}

export function startFakeVendor(): FakeVendor {
  const requests: FakeVendor["requests"] = [];
  let pageDelayMs = 0;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const path = new URL(request.url).pathname;
      requests.push({
        atMs: performance.now(),
        path,
        auth: request.headers.get("x-apikeys") ?? "",
      });
      const match = /^\/pages\/(\d+)$/.exec(path);
      if (!match) return new Response("not found", { status: 404 });
      if (pageDelayMs > 0) await Bun.sleep(pageDelayMs);
      return Response.json({ keys: pageKeys(Number(match[1])) });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    requests,
    pagesRequested: () =>
      requests.flatMap((r) => {
        const match = /^\/pages\/(\d+)$/.exec(r.path);
        return match ? [Number(match[1])] : [];
      }),
    setPageDelayMs: (ms) => {
      pageDelayMs = ms;
    },
    stop: () => server.stop(true),
  };
}
