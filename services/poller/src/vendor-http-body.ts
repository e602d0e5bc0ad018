import { VulnsubError, sleep } from "@vulnsub/shared";

/**
 * Returns a copy of `response` whose body calls `onDone` exactly once when
 * it ends, fails, is cancelled, or is absent. A body read that sees no data
 * for `idleTimeoutMs` fails with vendor_request_failed.
 */
export function wrapBody(
  response: Response,
  options: { idleTimeoutMs: number; label: string; onDone: () => void },
): Response {
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    options.onDone();
  };

  const source = response.body;
  if (!source) {
    finish();
    return response;
  }
  const reader: BodyReader = source.getReader();
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const chunk = await readWithIdleTimeout(reader, options);
          if (chunk.done) {
            finish();
            controller.close();
            return;
          }
          controller.enqueue(chunk.value);
        } catch (error) {
          finish();
          controller.error(error);
          reader.cancel(error).catch(() => {});
        }
      },
      async cancel(reason) {
        finish();
        await reader.cancel(reason).catch(() => {});
      },
    },
    { highWaterMark: 0 },
  );

  const wrapped = new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
  Object.defineProperty(wrapped, "url", { value: response.url });
  return wrapped;
}

/**
 * Reads at most `maxBytes` of a response body as UTF-8 text and cancels the
 * rest, so an error page cannot make the poller buffer without bound.
 */
export async function readBodyPrefix(
  response: Response,
  maxBytes: number,
): Promise<string> {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < maxBytes) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value.subarray(0, maxBytes - size));
      size += Math.min(value.byteLength, maxBytes - size);
    }
  } catch {
    // A reset while reading an error page leaves the text read so far.
  } finally {
    reader.cancel().catch(() => {});
  }
  return new TextDecoder().decode(Buffer.concat(chunks));
}

/** Sleeps `ms`, or throws AbortedError naming `what` when `signal` fires. */
export function sleepMs(
  ms: number,
  signal: AbortSignal | undefined,
  what: string,
): Promise<void> {
  return sleep(ms, signal, what);
}

const SECRET_PARAMETER = /key|secret|token|pass|auth|sig|session/i;

/**
 * Describes a URL for logs and error messages: origin, path and query, with
 * the values of parameters whose names look secret replaced by "redacted".
 */
export function describeUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "(invalid url)";
  }
  parsed.username = "";
  parsed.password = "";
  for (const name of [...parsed.searchParams.keys()]) {
    if (SECRET_PARAMETER.test(name)) parsed.searchParams.set(name, "redacted");
  }
  return parsed.toString();
}

type ReadResult =
  | { done: true; value?: undefined }
  | { done: false; value: Uint8Array };

interface BodyReader {
  read(): Promise<ReadResult>;
  cancel(reason?: unknown): Promise<void>;
}

function readWithIdleTimeout(
  reader: BodyReader,
  options: { idleTimeoutMs: number; label: string },
): Promise<ReadResult> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new VulnsubError(
          "vendor_request_failed",
          `${options.label}: no body data within ${options.idleTimeoutMs} ms`,
        ),
      );
    }, options.idleTimeoutMs);
  });
  return Promise.race([reader.read(), timeout]).finally(() => {
    clearTimeout(timer);
  });
}
