import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createQualysEnvelope } from "../src/adapters/qualys-envelope.ts";
import { qualysProfile } from "../src/adapters/qualys.ts";
import { checkPageUrl } from "../src/adapters/qualys-page-url.ts";
import { parseSimpleReturn } from "../src/adapters/qualys-simple-return.ts";
import {
  readDetectionPage,
  type DetectionItem,
  type DetectionPageTrailer,
} from "../src/adapters/qualys-xml-parser.ts";
import {
  chunkedStream,
  createEnvelopeValidator,
  repoRoot,
} from "./helpers/qualys-http.ts";

// Public Qualys responses kept beside the repository (not in it). Each file
// must be read by the matching part of the adapter. A file that no check
// matches fails the suite, so a new sample is never skipped silently.
const samplesDir = resolve(repoRoot, "../shared/vendor-samples/qualys");
const sampleFiles = existsSync(samplesDir)
  ? readdirSync(samplesDir).sort()
  : [];
const validateEnvelope = createEnvelopeValidator();

async function readPage(xml: string) {
  const items: DetectionItem[] = [];
  const reader = readDetectionPage(chunkedStream(xml, 1024));
  for (;;) {
    const step = await reader.next();
    if (step.done)
      return { items, trailer: step.value as DetectionPageTrailer };
    items.push(...step.value);
  }
}

async function pageError(xml: string): Promise<string> {
  try {
    await readPage(xml);
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  return "no error";
}

function rootElement(xml: string): string | null {
  const withoutProlog = xml
    .replace(/<\?xml[\s\S]*?\?>/, "")
    .replace(/<!DOCTYPE[\s\S]*?>/, "")
    .replace(/<!--[\s\S]*?-->/g, "");
  return /<([A-Z_]+)[\s>/]/.exec(withoutProlog)?.[1] ?? null;
}

async function checkDetectionPage(name: string, xml: string) {
  const { items, trailer } = await readPage(xml);
  const envelopes = items.map((item) =>
    createQualysEnvelope(item, {
      source: "samples",
      observedAt: "2026-03-01T00:00:00.000Z",
    }),
  );
  const keys = new Set(envelopes.map((envelope) => envelope.findingKey));
  expect(items.length).toBe((xml.match(/<DETECTION>/g) ?? []).length);
  expect(trailer.hosts).toBe((xml.match(/<HOST>/g) ?? []).length);
  expect(keys.size).toBe(envelopes.length);
  for (const envelope of envelopes) {
    expect(validateEnvelope(JSON.stringify(envelope))).toBeNull();
    expect(envelope.asset.id).toMatch(/^\d+$/);
  }
  if (!trailer.warning) return;

  // The next-page URL is followed only on the sample's own platform.
  const url = trailer.warning.url ?? "";
  const origin = new URL(url).origin;
  const endpoint = new URL(`${origin}/api/2.0/fo/asset/host/vm/detection/`);
  expect(trailer.warning.code).toBe("1980");
  expect(checkPageUrl(url, endpoint, null, `${name} WARNING URL`)).toContain(
    "id_min=",
  );
  expect(() =>
    checkPageUrl(
      url,
      new URL(
        "https://qualysapi.example.test/api/2.0/fo/asset/host/vm/detection/",
      ),
      null,
      "URL",
    ),
  ).toThrow("not followed");
}

async function checkSimpleReturn(xml: string) {
  const parsed = parseSimpleReturn(xml);
  const response = new Response(null, { status: 409 });
  const signal = qualysProfile.parseThrottle(response, xml, new Date());
  expect(parsed.code).toMatch(/^\d+$/);
  expect(await pageError(xml)).toContain(`SIMPLE_RETURN code ${parsed.code}`);
  if (parsed.code === "1965") {
    expect(signal).toEqual({
      kind: "rate",
      waitMs: Number(parsed.items.SECONDS_TO_WAIT) * 1000,
      reason: "qualys 1965",
    });
  } else if (parsed.code === "1960") {
    expect(signal?.kind).toBe("concurrency");
  } else {
    expect(signal).toBeNull();
  }
}

function checkHeaderExchanges(text: string) {
  const exchanges = JSON.parse(text) as {
    entries: { response_headers: { name: string; value: string }[] }[];
  };
  expect(exchanges.entries.length).toBeGreaterThan(0);
  for (const entry of exchanges.entries) {
    const headers = new Headers();
    for (const header of entry.response_headers)
      headers.append(header.name, header.value);
    const response = new Response(null, { status: 200, headers });
    expect(qualysProfile.parseAdvertisedLimit(response)).toEqual({
      requests: 300,
      windowMs: 3_600_000,
    });
    expect(qualysProfile.parseConcurrencyLimit(response)).toBe(2);
  }
}

describe.skipIf(sampleFiles.length === 0)("qualys public samples", () => {
  test.each(sampleFiles)("%s", async (name) => {
    const text = readFileSync(join(samplesDir, name), "utf8");
    const root = name.endsWith(".xml") ? rootElement(text) : null;

    if (root === "HOST_LIST_VM_DETECTION_OUTPUT") {
      await checkDetectionPage(name, text);
    } else if (root === "SIMPLE_RETURN") {
      await checkSimpleReturn(text);
    } else if (root === "KNOWLEDGE_BASE_VULN_LIST_OUTPUT") {
      // KnowledgeBase output is not a detection page; the reader says so.
      expect(await pageError(text)).toContain(
        "unexpected root element KNOWLEDGE_BASE_VULN_LIST_OUTPUT",
      );
    } else if (name.endsWith(".csv")) {
      // CSV output is rejected, and its footer URL (another API) too.
      const footerUrl = /"1980","[^"]*","([^"]+)"/.exec(text)?.[1] ?? "";
      const endpoint = new URL(
        `${new URL(footerUrl).origin}/api/2.0/fo/asset/host/vm/detection/`,
      );
      expect(await pageError(text)).toStartWith("malformed XML");
      expect(() => checkPageUrl(footerUrl, endpoint, null, "CSV URL")).toThrow(
        "has path",
      );
    } else if (name.endsWith(".json")) {
      checkHeaderExchanges(text);
    } else {
      throw new Error(`no check for sample ${name}; add one`);
    }
  });
});
