import { expect, test } from "bun:test";
import { createQualysAdapter } from "../src/adapters/qualys.ts";
import {
  FIXTURE_BASE_URL,
  createFixtureHttp,
  createTestContext,
} from "./helpers/qualys-http.ts";

// One page of 10,000 detections with 20 KB RESULTS each, about 200 MB of
// XML, generated host by host as the adapter pulls it, so the only place the
// page could pile up is the adapter. The check is on the live heap after a
// full collection, sampled during the read: it must stay flat. RSS is printed
// and only loosely bounded, because the allocator keeps freed pages for a
// while (about +150 to +230 MB here on Bun 1.3.5, whatever the page size).
//
// The body comes from an in-process stream, not over HTTP: Bun 1.3's fetch
// client reads a response body as fast as the socket delivers it, whatever
// the reader's pace, so an HTTP page would measure the client's buffer.
const HOSTS = 200;
const DETECTIONS_PER_HOST = 50;
const RESULTS_CHARS = 20_000;
const SAMPLE_EVERY_RECORDS = 2_000;
// Live heap may differ between samples by the chunk and batch in flight.
const MAX_HEAP_DRIFT_BYTES = 32 * 1024 * 1024;

test("200 MB page is parsed in bounded memory", async () => {
  const encoder = new TextEncoder();
  let pageBytes = 0;
  const page = () => {
    let host = -1;
    const body = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          const bytes = encoder.encode(pagePart(host));
          pageBytes += bytes.byteLength;
          controller.enqueue(bytes);
          if (host === HOSTS) controller.close();
          host++;
        },
      },
      { highWaterMark: 0 },
    );
    return new Response(body, { status: 200 });
  };
  const adapter = createQualysAdapter({ baseUrl: FIXTURE_BASE_URL });
  const context = createTestContext(createFixtureHttp([page]), {
    maxBatchRecords: 200,
  });

  Bun.gc(true);
  const baseline = process.memoryUsage();
  let peakRss = baseline.rss;
  const heapSamples: number[] = [];
  let records = 0;
  let envelopeBytes = 0;
  for await (const batch of adapter.sync(null, context)) {
    records += batch.records.length;
    for (const record of batch.records) envelopeBytes += record.json.length;
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    if (batch.records.length > 0 && records % SAMPLE_EVERY_RECORDS === 0) {
      Bun.gc(true);
      heapSamples.push(process.memoryUsage().heapUsed);
    }
  }

  const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(0);
  console.log(
    `qualys memory: ${mb(pageBytes)} MB page, ${records} records, ` +
      `${mb(envelopeBytes)} MB of envelopes; live heap samples ` +
      `${heapSamples.map(mb).join(", ")} MB; RSS ${mb(baseline.rss)} -> peak ` +
      `${mb(peakRss)} MB (+${mb(peakRss - baseline.rss)} MB)`,
  );
  expect(pageBytes).toBeGreaterThan(190 * 1024 * 1024);
  expect(records).toBe(HOSTS * DETECTIONS_PER_HOST);
  expect(heapSamples.length).toBe(records / SAMPLE_EVERY_RECORDS);
  // A page held in memory would make each sample larger than the last.
  expect(Math.max(...heapSamples) - (heapSamples[0] as number)).toBeLessThan(
    MAX_HEAP_DRIFT_BYTES,
  );
  // Holding the page and its envelopes would need both at once.
  expect(peakRss - baseline.rss).toBeLessThan(pageBytes + envelopeBytes);
}, 300_000);

/** Returns part `index` of the page: -1 the head, HOSTS the tail. */
function pagePart(index: number): string {
  if (index < 0) return pageHead();
  if (index < HOSTS) return hostXml(index);
  return pageTail();
}

function pageHead(): string {
  return (
    '<?xml version="1.0" encoding="UTF-8" ?>\n' +
    "<HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE>" +
    "<DATETIME>2026-03-01T00:00:00Z</DATETIME><HOST_LIST>\n"
  );
}

function pageTail(): string {
  return "</HOST_LIST></RESPONSE></HOST_LIST_VM_DETECTION_OUTPUT>\n";
}

function hostXml(index: number): string {
  const line = `lib-${index}\t1.2.${index}\t1.3.0\n`;
  const results = line
    .repeat(Math.ceil(RESULTS_CHARS / line.length))
    .slice(0, RESULTS_CHARS);
  const parts = [
    `<HOST><ID>${1000 + index}</ID><IP>10.0.${index >> 8}.${index & 255}</IP>`,
    `<DNS><![CDATA[host-${index}.example.test]]></DNS><DETECTION_LIST>\n`,
  ];
  for (let qid = 1; qid <= DETECTIONS_PER_HOST; qid++) {
    parts.push(
      `<DETECTION><QID>${qid}</QID><TYPE>Confirmed</TYPE><SEVERITY>3</SEVERITY>`,
      `<RESULTS><![CDATA[${results}]]></RESULTS><STATUS>Active</STATUS>`,
      "<LAST_FOUND_DATETIME>2026-02-01T00:00:00Z</LAST_FOUND_DATETIME></DETECTION>\n",
    );
  }
  parts.push("</DETECTION_LIST></HOST>\n");
  return parts.join("");
}
