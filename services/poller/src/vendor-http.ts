import {
  AbortedError,
  VendorHttpError,
  VulnsubError,
  errorFields,
  type Logger,
} from "@vulnsub/shared";
import type {
  AdvertisedLimit,
  ThrottleSignal,
  VendorCredentials,
  VendorHttp,
  VendorProfile,
  VendorRequest,
} from "./adapter.ts";
import {
  describeUrl,
  readBodyPrefix,
  sleepMs,
  wrapBody,
} from "./vendor-http-body.ts";

/**
 * The permit source VendorHttp waits on before every attempt: the shared
 * Redis rate limiter, pause gate and (for Qualys) concurrency semaphore.
 * `release` frees the concurrency slot; it is called once per lease.
 */
export interface VendorGateLike {
  acquire(
    signal?: AbortSignal,
  ): Promise<{ waitedMs: number; release(): Promise<void> }>;
  /** Stops every poller of the account from starting requests for `ms`. */
  pauseFor?(ms: number, reason: string): Promise<void>;
}

/** Outcome of one attempt, for metrics: HTTP status, "error" or "timeout". */
export interface VendorAttemptResult {
  operation: string;
  status: string;
  durationMs: number;
}

export interface VendorHttpOptions {
  profile: VendorProfile;
  baseUrl: string;
  credentials: VendorCredentials;
  /** Null sends without any limit; meant for unit tests. */
  gate: VendorGateLike | null;
  /** Logger; its bindings should name the job (vendor, source). */
  logger: Logger;
  /** Aborts waits, requests and body reads. */
  signal?: AbortSignal;
  /** Attempts per request for 5xx, network errors and timeouts (5). */
  maxAttempts?: number;
  /** First retry delay before jitter, doubled per attempt (500 ms). */
  baseBackoffMs?: number;
  /** Cap of the retry delay (30 000 ms). */
  maxBackoffMs?: number;
  /**
   * Time allowed for the response headers, and then for each body chunk
   * (120 000 ms, the Tenable SDK's timeout).
   */
  requestTimeoutMs?: number;
  /** Throttle responses (429, Qualys 409) tolerated per request (20). */
  maxThrottles?: number;
  now?: () => Date;
  random?: () => number;
  onAdvertisedLimit?(limit: AdvertisedLimit): void;
  onConcurrencyLimit?(limit: number): void;
  onThrottle?(signal: ThrottleSignal): void;
  onRateLimitWaited?(waitedMs: number): void;
  onAttempt?(result: VendorAttemptResult): void;
  /** Proxy and TLS trust per request; default: direct, public roots. */
  transport?: { fetchOptions(url: string): object };
}

/**
 * Shortest gate wait worth a ratelimit.waited line. Every acquire costs a
 * few Redis round trips, so smaller waits are not throttling.
 */
const WAIT_LOG_THRESHOLD_MS = 50;

/**
 * Creates the VendorHttp of one vendor account. Every attempt first waits
 * for a gate lease. The lease is released when the response headers arrive
 * for errors, and when the body ends, fails or is cancelled for 2xx, so a
 * concurrency slot covers the whole running call.
 */
export function createVendorHttp(options: VendorHttpOptions): VendorHttp {
  const settings = {
    maxAttempts: options.maxAttempts ?? 5,
    baseBackoffMs: options.baseBackoffMs ?? 500,
    maxBackoffMs: options.maxBackoffMs ?? 30_000,
    requestTimeoutMs: options.requestTimeoutMs ?? 120_000,
    maxThrottles: options.maxThrottles ?? 20,
    now: options.now ?? (() => new Date()),
    random: options.random ?? Math.random,
  };
  const vendor = options.profile.vendor;
  const logger = options.logger;

  async function request(req: VendorRequest): Promise<Response> {
    const url = new URL(req.url, `${options.baseUrl}/`).toString();
    const label = `${vendor} ${req.operation} ${req.method} ${describeUrl(url)}`;
    let attempt = 0;
    let throttles = 0;

    for (;;) {
      const outcome = await attemptOnce(req, url, label);
      if (outcome.kind === "response") return outcome.response;

      if (outcome.kind === "throttle") {
        throttles++;
        if (throttles > settings.maxThrottles) {
          throw new VulnsubError(
            "rate_limited",
            `${label}: throttled ${throttles} times (${outcome.signal.reason})`,
            { context: { vendor, operation: req.operation } },
          );
        }
        await waitOutThrottle(req, outcome.signal, throttles);
        continue;
      }

      attempt++;
      if (attempt >= settings.maxAttempts) {
        throw new VulnsubError(
          "vendor_request_failed",
          `${label}: ${outcome.what} after ${attempt} attempts`,
          {
            cause: outcome.error,
            context: { vendor, operation: req.operation },
          },
        );
      }
      const retryInMs = backoffMs(attempt);
      logger.warn(
        {
          event: "vendor.request_failed",
          operation: req.operation,
          url: describeUrl(url),
          attempt,
          maxAttempts: settings.maxAttempts,
          retryInMs,
          reason: outcome.what,
          ...(outcome.error ? errorFields(outcome.error) : {}),
        },
        `${label}: ${outcome.what}, retrying`,
      );
      await sleepMs(retryInMs, options.signal, label);
    }
  }

  type Outcome =
    | { kind: "response"; response: Response }
    | { kind: "throttle"; signal: ThrottleSignal }
    | { kind: "retry"; what: string; error?: unknown };

  async function attemptOnce(
    req: VendorRequest,
    url: string,
    label: string,
  ): Promise<Outcome> {
    if (options.signal?.aborted) {
      throw new AbortedError(label, options.signal.reason);
    }
    const lease = await acquireLease();
    const releaseOnce = once(() => releaseLease(lease));
    const startedAt = performance.now();
    const call = startCall(label);

    let response: Response;
    try {
      response = await fetch(url, {
        ...options.transport?.fetchOptions(url),
        method: req.method,
        headers: buildHeaders(req),
        body: req.body,
        signal: call.signal,
        redirect: "manual",
      });
    } catch (error) {
      call.dispose();
      releaseOnce();
      const durationMs = Math.round(performance.now() - startedAt);
      if (options.signal?.aborted) throw new AbortedError(label, error);
      const timedOut = call.timedOut();
      options.onAttempt?.({
        operation: req.operation,
        status: timedOut ? "timeout" : "error",
        durationMs,
      });
      const what = timedOut
        ? `no response headers within ${settings.requestTimeoutMs} ms`
        : `request failed (${messageOf(error)})`;
      return { kind: "retry", what, error };
    }
    call.headersArrived();
    const durationMs = Math.round(performance.now() - startedAt);
    options.onAttempt?.({
      operation: req.operation,
      status: String(response.status),
      durationMs,
    });
    logger.debug(
      {
        event: "vendor.responded",
        operation: req.operation,
        url: describeUrl(url),
        status: response.status,
        durationMs,
      },
      `${label}: HTTP ${response.status}`,
    );
    reportAdvertisedLimits(response);

    if (response.status >= 200 && response.status < 300) {
      return {
        kind: "response",
        response: wrapBody(response, {
          idleTimeoutMs: settings.requestTimeoutMs,
          label,
          onDone: () => {
            call.dispose();
            releaseOnce();
          },
        }),
      };
    }

    try {
      return await classifyFailure(req, response, label);
    } finally {
      call.dispose();
      releaseOnce();
    }
  }

  async function classifyFailure(
    req: VendorRequest,
    response: Response,
    label: string,
  ): Promise<Outcome> {
    const status = response.status;
    const body = await readBodyPrefix(response, 64 * 1024);

    // A 503 may carry Retry-After (Rapid7 and gateways send it when
    // overloaded), so the profile parses it before the generic 5xx retry.
    if (status === 429 || status === 409 || status === 503) {
      const signal = options.profile.parseThrottle(
        response,
        body,
        settings.now(),
      );
      if (signal) return { kind: "throttle", signal };
      // A 429 is a throttle even without the headers the profile parses;
      // the growing backoff then sets the wait.
      if (status === 429) {
        return {
          kind: "throttle",
          signal: { kind: "rate", waitMs: 0, reason: "http 429" },
        };
      }
    }
    if (status >= 500 || status === 408) {
      return { kind: "retry", what: `HTTP ${status}` };
    }

    // The XML prolog and DOCTYPE would fill the snippet and hide the
    // vendor's error code and text (Qualys SIMPLE_RETURN).
    const snippet = body
      .replace(/^\s*<\?xml[^>]*\?>/, "")
      .replace(/^\s*<!DOCTYPE[^>]*>/, "")
      .replace(/\s+/g, " ")
      .trim()
      .slice(0, 200);
    const location = response.headers.get("location");
    const detail = location
      ? `redirect to ${describeUrl(location)} not followed`
      : snippet;
    // The body (at most 64 KiB) stays in the context for adapters that
    // read a documented error body, such as Tenable's 409 active_job_id.
    throw new VendorHttpError(`${label}: HTTP ${status}: ${detail}`, status, {
      vendor,
      operation: req.operation,
      body: body.slice(0, 4096),
    });
  }

  async function waitOutThrottle(
    req: VendorRequest,
    signal: ThrottleSignal,
    throttles: number,
  ) {
    const waitMs =
      signal.kind === "rate" && signal.waitMs > 0
        ? signal.waitMs
        : Math.max(signal.waitMs, backoffMs(throttles));
    logger.warn(
      {
        event: "vendor.throttled",
        operation: req.operation,
        kind: signal.kind,
        reason: signal.reason,
        waitMs,
        throttles,
      },
      `${vendor} ${req.operation}: throttled (${signal.reason}), ` +
        `waiting ${waitMs} ms`,
    );
    options.onThrottle?.({ ...signal, waitMs });

    // A rate throttle pauses every poller of the account; the next acquire
    // then waits out the pause. Without a shared gate this call waits alone.
    if (signal.kind === "rate" && options.gate?.pauseFor) {
      await options.gate.pauseFor(waitMs, signal.reason);
      return;
    }
    await sleepMs(waitMs, options.signal, `${vendor} ${req.operation}`);
  }

  async function acquireLease() {
    if (!options.gate) return null;
    const lease = await options.gate.acquire(options.signal);
    options.onRateLimitWaited?.(lease.waitedMs);
    if (lease.waitedMs >= WAIT_LOG_THRESHOLD_MS) {
      logger.info(
        { event: "ratelimit.waited", durationMs: Math.round(lease.waitedMs) },
        `${vendor}: waited ${Math.round(lease.waitedMs)} ms for a permit`,
      );
    }
    return lease;
  }

  function releaseLease(lease: { release(): Promise<void> } | null) {
    if (!lease) return;
    lease.release().catch((error: unknown) => {
      logger.warn(
        { event: "vendor.lease_release_failed", ...errorFields(error) },
        `${vendor}: releasing the concurrency lease failed`,
      );
    });
  }

  // Header order matters: the profile's auth headers win over anything the
  // adapter passed, so an adapter cannot send a stale credential.
  function buildHeaders(req: VendorRequest): Record<string, string> {
    return {
      ...options.profile.staticHeaders,
      ...req.headers,
      ...options.profile.authHeaders(options.credentials),
    };
  }

  function reportAdvertisedLimits(response: Response) {
    const limit = options.profile.parseAdvertisedLimit(response);
    if (limit) options.onAdvertisedLimit?.(limit);
    const concurrency = options.profile.parseConcurrencyLimit(response);
    if (concurrency !== null) options.onConcurrencyLimit?.(concurrency);
  }

  // Full jitter between half and all of the capped exponential delay.
  function backoffMs(attempt: number): number {
    const exponent = Math.min(attempt - 1, 30);
    const capped = Math.min(
      settings.maxBackoffMs,
      settings.baseBackoffMs * 2 ** exponent,
    );
    return Math.round(capped / 2 + (settings.random() * capped) / 2);
  }

  function startCall(label: string) {
    const controller = new AbortController();
    let timedOut = false;
    const onAbort = () => controller.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error(`${label}: timed out`));
    }, settings.requestTimeoutMs);
    return {
      signal: controller.signal,
      timedOut: () => timedOut,
      headersArrived: () => clearTimeout(timer),
      dispose: () => {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
      },
    };
  }

  return { request };
}

function once(action: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    action();
  };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
