import { SIMULATOR_CREDENTIALS } from "@vulnsub/simulators";

/**
 * Reads the first Host List Detection page of the Qualys simulator at
 * `baseUrl` with the query the poller's Qualys adapter sends on its first
 * run (all statuses, RESULTS on, Info detections off, `truncation_limit`
 * hosts) and returns its size in bytes. The body is read as a stream and
 * dropped, so a page of any size is counted in constant memory.
 */
export async function countQualysPageBytes(
  baseUrl: string,
  truncationLimit: number,
): Promise<number> {
  const { QUALYS_USERNAME, QUALYS_PASSWORD } = SIMULATOR_CREDENTIALS.qualys;
  const params = new URLSearchParams({
    action: "list",
    truncation_limit: String(truncationLimit),
    status: "New,Active,Fixed,Re-Opened",
    show_results: "1",
    show_igs: "0",
    detection_processed_after: "1970-01-01T00:00:00Z",
  });
  const url = `${baseUrl}/api/2.0/fo/asset/host/vm/detection/?${params}`;
  const basic = Buffer.from(`${QUALYS_USERNAME}:${QUALYS_PASSWORD}`);
  const response = await fetch(url, {
    headers: {
      Authorization: `Basic ${basic.toString("base64")}`,
      "X-Requested-With": "vulnsub-bench",
    },
  });
  if (response.status !== 200 || !response.body) {
    throw new Error(`qualys page ${url}: HTTP ${response.status}`);
  }

  let bytes = 0;
  for await (const chunk of response.body) bytes += chunk.byteLength;
  return bytes;
}
