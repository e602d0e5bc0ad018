import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { errorCodeOf, type FindingEnvelope } from "@vulnsub/shared";
import { buildRapid7Record } from "../src/adapters/rapid7-envelope.ts";
import {
  parseRapid7AssetPage,
  parseRapid7DefinitionPage,
  parseRapid7ErrorBody,
} from "../src/adapters/rapid7-parse.ts";
import { createEnvelopeValidator, repoRoot } from "./helpers/rapid7-http.ts";

// Public Rapid7 responses kept beside the repository. Cloud v4 files must
// parse; console v3 files are either error bodies or pages the v4 parser
// must reject with a clear error. A new file with no entry fails the test.
const SAMPLES = resolve(repoRoot, "../shared/vendor-samples/rapid7");
const present = existsSync(SAMPLES);

const load = (name: string): unknown =>
  JSON.parse(readFileSync(resolve(SAMPLES, name), "utf8"));

function rejection(run: () => unknown): { code: string; message: string } {
  try {
    run();
  } catch (error) {
    return { code: errorCodeOf(error), message: (error as Error).message };
  }
  return { code: "none", message: "" };
}

function recordsOf(page: ReturnType<typeof parseRapid7AssetPage>) {
  return page.assets.flatMap((asset) =>
    (["new", "same", "remediated"] as const).flatMap((list) =>
      asset.findings[list].map((finding) =>
        buildRapid7Record({
          asset,
          finding,
          list,
          definition: null,
          source: "samples",
          observedAt: "2025-06-01T00:00:00.000Z",
          currentTime: null,
        }),
      ),
    ),
  );
}

type Check = (name: string) => void;

const errorBody =
  (status: number | null, fragment: string): Check =>
  (name) => {
    const parsed = parseRapid7ErrorBody(load(name), name);
    expect(parsed.status).toBe(status);
    expect(parsed.message).toContain(fragment);
    const asPage = rejection(() => parseRapid7AssetPage(load(name), name));
    expect(asPage.code).toBe("vendor_response_invalid");
  };

const rejectedAsV3: Check = (name) => {
  const result = rejection(() => parseRapid7AssetPage(load(name), name));
  expect(result.code).toBe("vendor_response_invalid");
  expect(result.message).toContain(name);
  expect(result.message).toContain("Security Console API v3");
};

const rejectedAsNotAPage: Check = (name) => {
  const result = rejection(() => parseRapid7AssetPage(load(name), name));
  expect(result.code).toBe("vendor_response_invalid");
  expect(result.message).toContain("data: expected an array");
};

const CHECKS: Record<string, Check> = {
  "insightconnect-cloud-v4-asset_search.json": (name) => {
    const page = parseRapid7AssetPage(load(name), name);
    expect(page.assets.length).toBe(2);
    expect(page.cursor).toMatch(/:::_S:::/);
    expect(page.assets[0]?.addresses).toEqual(["1.1.1.1"]);
    expect(recordsOf(page)).toEqual([]);
  },
  "insightconnect-cloud-v4-asset_search_empty.json": (name) => {
    const page = parseRapid7AssetPage(load(name), name);
    expect(page.assets).toEqual([]);
    expect(page.cursor).toBeNull();
  },
  "insightconnect-cloud-v4-get_asset_include_vulns.json": (name) => {
    // A single asset (GET by id); wrapped as a one-asset search page.
    const page = parseRapid7AssetPage({ data: [load(name)] }, name);
    const records = recordsOf(page);
    expect(records.length).toBe(1);
    const envelope = JSON.parse(records[0]?.json ?? "{}") as FindingEnvelope;
    expect(envelope.state).toBe("open");
    expect(envelope.vendorState).toBe("vulnerable");
    expect(envelope.asset.hostname).toBe("test.test.test.test");
    expect(createEnvelopeValidator()(records[0]?.json ?? "")).toBeNull();
  },
  "insightconnect-cloud-v4-vuln_search.json": (name) => {
    const page = parseRapid7DefinitionPage(load(name), name);
    expect(page.definitions.map((item) => item.id)).toEqual([
      "7-zip-cve-2008-6536",
      "7-zip-cve-2016-2334",
    ]);
    expect(page.definitions[0]?.severity).toBe("critical");
    expect(page.definitions[0]?.cves).toEqual(["CVE-2008-6536"]);
    expect(page.cursor).toMatch(/:::_S:::7-zip-cve-2016-2334$/);
  },
  "insightconnect-cloud-v4-asset_search_invalid_asset_criteria.json": errorBody(
    400,
    "Unable to parse query",
  ),
  "insightconnect-cloud-v4-get_asset_404.json": errorBody(
    404,
    "does not exist",
  ),
  "insightconnect-cloud-v4-server_error.json": errorBody(500, "unexpected"),
  "insightconnect-cloud-v4-unauthorized.json": errorBody(null, "Unauthorized"),
  "insightconnect-console-v3-error_response.json": errorBody(
    null,
    "Failed to retrieve scans",
  ),
  "insightconnect-console-v3-get_asset_vulnerabilities.json": rejectedAsV3,
  "insightconnect-console-v3-get_asset_vulnerabilities_with_risk_score.json":
    rejectedAsNotAPage,
  "jupiterone-console-v3-api-root-links.json": rejectedAsNotAPage,
  "jupiterone-console-v3-asset-1-vulnerabilities-page0.json": rejectedAsV3,
  "jupiterone-console-v3-assets-page0.json": rejectedAsV3,
  "jupiterone-console-v3-http-exchange-headers.json": rejectedAsNotAPage,
  "jupiterone-console-v3-scans-page0.json": rejectedAsV3,
  "jupiterone-console-v3-vulnerability-apache-httpd-cve-2017-15710.json":
    rejectedAsNotAPage,
};

describe.skipIf(!present)("rapid7 public samples", () => {
  const files = present
    ? readdirSync(SAMPLES)
        .filter((name) => name.endsWith(".json"))
        .sort()
    : [];

  test("every sample has a check", () => {
    const unchecked = files.filter((name) => !(name in CHECKS));
    expect(unchecked).toEqual([]);
  });

  for (const name of files) {
    const check = CHECKS[name];
    if (!check) continue;
    test(name, () => check(name));
  }
});
