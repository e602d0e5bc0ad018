import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { VendorHttpError, VulnsubError } from "@vulnsub/shared";
import type { VendorHttp } from "../src/adapter.ts";
import {
  createVendorHttp,
  type VendorGateLike,
  type VendorHttpOptions,
} from "../src/vendor-http.ts";
import { fakeCredentials, fakeProfile } from "./helpers/fake-profile.ts";
import { createLogCapture, type LogCapture } from "./helpers/log-capture.ts";

type Handler = (request: Request) => Response | Promise<Response>;

let handler: Handler = () => new Response("unset", { status: 500 });
let server: ReturnType<typeof Bun.serve>;
let baseUrl: string;

beforeAll(() => {
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (request) => handler(request),
  });
  baseUrl = `http://127.0.0.1:${server.port}/api`;
});

afterAll(async () => {
  await server.stop(true);
});

function createFakeGate(waitedMs = 0) {
  const calls = { acquired: 0, released: 0, pauses: [] as number[] };
  const gate: VendorGateLike = {
    async acquire() {
      calls.acquired++;
      return {
        waitedMs,
        release: async () => {
          calls.released++;
        },
      };
    },
    async pauseFor(ms) {
      calls.pauses.push(ms);
    },
  };
  return { gate, calls };
}

function createHttp(
  log: LogCapture,
  overrides: Partial<VendorHttpOptions> = {},
): VendorHttp {
  return createVendorHttp({
    profile: fakeProfile,
    baseUrl,
    credentials: fakeCredentials,
    gate: null,
    logger: log.logger,
    baseBackoffMs: 1,
    maxBackoffMs: 5,
    ...overrides,
  });
}

async function captureError(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

describe("createVendorHttp", () => {
  test("sends auth and static headers", async () => {
    let path = "";
    let headers = new Headers();
    handler = (request) => {
      path = new URL(request.url).pathname;
      headers = request.headers;
      return new Response("ok");
    };
    const http = createHttp(createLogCapture());

    const response = await http.request({
      method: "GET",
      url: "vulns/export?limit=5",
      operation: "export",
      headers: { Accept: "application/json" },
    });

    expect(await response.text()).toBe("ok");
    expect(path).toBe("/api/vulns/export");
    expect(headers.get("x-apikeys")).toContain("secret-9e107d9d37");
    expect(headers.get("x-requested-with")).toBe("vulnsub-test");
    expect(headers.get("accept")).toBe("application/json");
  });

  test("releases lease after body is consumed", async () => {
    handler = () => new Response("a body");
    const { gate, calls } = createFakeGate();
    const http = createHttp(createLogCapture(), { gate });

    const response = await http.request({
      method: "GET",
      url: "page",
      operation: "page",
    });
    const releasedBeforeRead = calls.released;
    await response.text();

    expect(releasedBeforeRead).toBe(0);
    expect(calls.released).toBe(1);
  });

  test("releases lease when body is cancelled", async () => {
    handler = () => new Response("x".repeat(1 << 20));
    const { gate, calls } = createFakeGate();
    const http = createHttp(createLogCapture(), { gate });

    const response = await http.request({
      method: "GET",
      url: "page",
      operation: "page",
    });
    await response.body?.cancel();

    expect(calls.released).toBe(1);
  });

  test("retries 503 then succeeds", async () => {
    let requests = 0;
    handler = () => {
      requests++;
      return requests < 3
        ? new Response("busy", { status: 503 })
        : new Response("ok");
    };
    const log = createLogCapture();
    const { gate, calls } = createFakeGate();
    const http = createHttp(log, { gate });

    const response = await http.request({
      method: "GET",
      url: "page",
      operation: "page",
    });

    expect(await response.text()).toBe("ok");
    expect(requests).toBe(3);
    expect(calls.acquired).toBe(3);
    expect(calls.released).toBe(3);
    expect(log.events("vendor.request_failed").length).toBe(2);
  });

  test("503 gives up after max attempts", async () => {
    let requests = 0;
    handler = () => {
      requests++;
      return new Response("busy", { status: 503 });
    };
    const http = createHttp(createLogCapture(), { maxAttempts: 3 });

    const error = await captureError(
      http.request({
        method: "GET",
        url: `${baseUrl}/page?accessKey=abc&limit=5`,
        operation: "page",
      }),
    );

    expect(requests).toBe(3);
    expect(error).toBeInstanceOf(VulnsubError);
    expect((error as VulnsubError).code).toBe("vendor_request_failed");
    expect((error as Error).message).toBe(
      `tenable page GET ${baseUrl}/page?accessKey=redacted&limit=5: ` +
        "HTTP 503 after 3 attempts",
    );
  });

  test("404 fails without retry", async () => {
    let requests = 0;
    handler = () => {
      requests++;
      return new Response(`not found ${"y".repeat(400)}`, { status: 404 });
    };
    const http = createHttp(createLogCapture());

    const error = await captureError(
      http.request({ method: "GET", url: "gone", operation: "asset" }),
    );

    expect(requests).toBe(1);
    expect(error).toBeInstanceOf(VendorHttpError);
    expect((error as VendorHttpError).status).toBe(404);
    expect((error as Error).message).toStartWith(
      `tenable asset GET ${baseUrl}/gone: HTTP 404: not found yyy`,
    );
    expect((error as Error).message.length).toBeLessThan(300);
  });

  test("409 without throttle code fails", async () => {
    handler = () => new Response('{"active_job_id":"2f33"}', { status: 409 });
    const http = createHttp(createLogCapture());

    const error = await captureError(
      http.request({ method: "POST", url: "export", operation: "export" }),
    );

    expect((error as VendorHttpError).status).toBe(409);
    expect((error as Error).message).toContain("active_job_id");
  });

  test("429 pauses the account and retries", async () => {
    let requests = 0;
    handler = () => {
      requests++;
      if (requests <= 4) {
        return new Response("<html>slow down</html>", {
          status: 429,
          headers: { "retry-after": "2" },
        });
      }
      return new Response("ok");
    };
    const log = createLogCapture();
    const { gate, calls } = createFakeGate();
    const http = createHttp(log, { gate, maxAttempts: 2 });

    const response = await http.request({
      method: "GET",
      url: "page",
      operation: "page",
    });

    expect(await response.text()).toBe("ok");
    expect(calls.pauses).toEqual([2000, 2000, 2000, 2000]);
    expect(calls.released).toBe(5);
    const throttled = log.events("vendor.throttled");
    expect(throttled.length).toBe(4);
    expect(throttled[0]?.waitMs).toBe(2000);
    expect(throttled[0]?.reason).toBe("http 429");
  });

  test("throttles beyond the bound fail", async () => {
    handler = () =>
      new Response("", { status: 429, headers: { "retry-after": "1" } });
    const { gate } = createFakeGate();
    const http = createHttp(createLogCapture(), { gate, maxThrottles: 3 });

    const error = await captureError(
      http.request({ method: "GET", url: "page", operation: "page" }),
    );

    expect((error as VulnsubError).code).toBe("rate_limited");
  });

  test("concurrency throttle waits without pausing", async () => {
    let requests = 0;
    handler = () => {
      requests++;
      if (requests === 1) {
        return new Response("<CODE>1960</CODE>", { status: 409 });
      }
      return new Response("ok");
    };
    const log = createLogCapture();
    const { gate, calls } = createFakeGate();
    const http = createHttp(log, { gate });

    const response = await http.request({
      method: "POST",
      url: "detections",
      operation: "detections",
    });

    expect(await response.text()).toBe("ok");
    expect(calls.pauses).toEqual([]);
    expect(log.events("vendor.throttled")[0]?.kind).toBe("concurrency");
  });

  test("header timeout is retried", async () => {
    let requests = 0;
    handler = async () => {
      requests++;
      await Bun.sleep(requests === 1 ? 1000 : 0);
      return new Response("late ok");
    };
    const log = createLogCapture();
    const http = createHttp(log, { requestTimeoutMs: 100 });

    const response = await http.request({
      method: "GET",
      url: "slow",
      operation: "page",
    });

    expect(await response.text()).toBe("late ok");
    const failed = log.events("vendor.request_failed");
    expect(failed.length).toBe(1);
    expect(String(failed[0]?.reason)).toContain("no response headers");
  });

  test("stalled body fails and releases", async () => {
    handler = () =>
      new Response(
        new ReadableStream({
          start(controller) {
            controller.enqueue(new TextEncoder().encode("first"));
          },
        }),
      );
    const { gate, calls } = createFakeGate();
    const http = createHttp(createLogCapture(), {
      gate,
      requestTimeoutMs: 100,
    });

    const response = await http.request({
      method: "GET",
      url: "stall",
      operation: "page",
    });
    const error = await captureError(response.text());

    expect((error as VulnsubError).code).toBe("vendor_request_failed");
    expect(calls.released).toBe(1);
  });

  test("refused connection is retried then fails", async () => {
    const closed = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: () => new Response(),
    });
    const port = closed.port;
    await closed.stop(true);
    const http = createHttp(createLogCapture(), {
      baseUrl: `http://127.0.0.1:${port}`,
      maxAttempts: 2,
    });

    const error = await captureError(
      http.request({ method: "GET", url: "x", operation: "page" }),
    );

    expect((error as VulnsubError).code).toBe("vendor_request_failed");
    expect((error as Error).message).toContain("after 2 attempts");
  });

  test("abort stops the retries", async () => {
    handler = () => new Response("busy", { status: 503 });
    const controller = new AbortController();
    const http = createHttp(createLogCapture(), {
      signal: controller.signal,
      baseBackoffMs: 60_000,
      maxBackoffMs: 60_000,
    });

    const pending = http.request({ method: "GET", url: "x", operation: "p" });
    setTimeout(() => controller.abort(), 50);
    const error = await captureError(pending);

    expect((error as VulnsubError).code).toBe("aborted");
  });

  test("advertised limits reach the hooks", async () => {
    handler = () =>
      new Response("ok", {
        headers: {
          "x-ratelimit-limit": "300",
          "x-ratelimit-window-sec": "3600",
          "x-concurrency-limit-limit": "2",
        },
      });
    const limits: unknown[] = [];
    const concurrency: number[] = [];
    const http = createHttp(createLogCapture(), {
      onAdvertisedLimit: (limit) => limits.push(limit),
      onConcurrencyLimit: (limit) => concurrency.push(limit),
    });

    await (
      await http.request({ method: "GET", url: "x", operation: "p" })
    ).text();

    expect(limits).toEqual([{ requests: 300, windowMs: 3_600_000 }]);
    expect(concurrency).toEqual([2]);
  });

  test("permit wait is logged", async () => {
    handler = () => new Response("ok");
    const log = createLogCapture();
    const { gate } = createFakeGate(1500);
    const http = createHttp(log, { gate });

    await (
      await http.request({ method: "GET", url: "x", operation: "p" })
    ).text();

    expect(log.events("ratelimit.waited")[0]?.durationMs).toBe(1500);
  });

  test("secrets never reach logs or errors", async () => {
    handler = () => new Response("no", { status: 503 });
    const log = createLogCapture();
    const http = createHttp(log, { maxAttempts: 3 });

    const error = await captureError(
      http.request({ method: "GET", url: "x", operation: "p" }),
    );

    expect(log.text()).not.toContain(fakeCredentials.secretKey);
    expect(log.text()).not.toContain(fakeCredentials.accessKey);
    expect(String(error)).not.toContain(fakeCredentials.secretKey);
  });
});
