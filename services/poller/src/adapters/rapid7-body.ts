import { VulnsubError, isVulnsubError, throwIfAborted } from "@vulnsub/shared";

/**
 * Reads a whole Rapid7 response body and parses it as JSON. A v4 page
 * contains at most 500 assets, so it is buffered and parsed at once. The
 * size limit is checked against Content-Length before reading and against
 * the bytes received while reading.
 *
 * Errors, each naming `where`:
 * - body over `maxBodyBytes`, invalid UTF-8, invalid JSON (a truncated body
 *   included): vendor_response_invalid;
 * - the connection failing mid-body: vendor_request_failed, which the poll
 *   loop retries from the last durable cursor.
 */
export async function readRapid7Json(
  response: Response,
  options: { maxBodyBytes: number; where: string; signal?: AbortSignal },
): Promise<unknown> {
  const { maxBodyBytes, where } = options;
  const declared = Number(response.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > maxBodyBytes) {
    await response.body?.cancel().catch(() => {});
    throw tooLarge(where, declared, maxBodyBytes);
  }

  const bytes = await readBytes(response, maxBodyBytes, where, options.signal);

  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    throw new VulnsubError(
      "vendor_response_invalid",
      `${where}: body of ${bytes.byteLength} bytes is not valid UTF-8`,
      { cause: error, context: { vendor: "rapid7" } },
    );
  }

  try {
    return JSON.parse(text);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new VulnsubError(
      "vendor_response_invalid",
      `${where}: body of ${bytes.byteLength} bytes is not valid JSON ` +
        `(malformed or truncated): ${message}`,
      { cause: error, context: { vendor: "rapid7" } },
    );
  }
}

async function readBytes(
  response: Response,
  maxBodyBytes: number,
  where: string,
  signal: AbortSignal | undefined,
): Promise<Uint8Array> {
  if (!response.body) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      throwIfAborted(signal, where);
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBodyBytes) {
        reader.cancel().catch(() => {});
        throw tooLarge(where, size, maxBodyBytes);
      }
      chunks.push(value);
    }
  } catch (error) {
    if (isVulnsubError(error)) throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new VulnsubError(
      "vendor_request_failed",
      `${where}: reading the body failed after ${size} bytes: ${message}`,
      { cause: error, context: { vendor: "rapid7" } },
    );
  }
  return Buffer.concat(chunks);
}

function tooLarge(where: string, bytes: number, maxBodyBytes: number) {
  return new VulnsubError(
    "vendor_response_invalid",
    `${where}: body of at least ${bytes} bytes exceeds the limit of ` +
      `${maxBodyBytes} bytes (RAPID7_MAX_BODY_BYTES); lower RAPID7_PAGE_SIZE`,
    { context: { vendor: "rapid7" } },
  );
}
