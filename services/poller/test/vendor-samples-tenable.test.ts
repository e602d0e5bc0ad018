import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { tenableProfile } from "../src/adapters/tenable.ts";
import {
  parseTenableChunk,
  toTenableRecord,
} from "../src/adapters/tenable-chunk.ts";
import {
  parseExportConflict,
  parseExportCreated,
  parseExportJobs,
  parseExportStatus,
} from "../src/adapters/tenable-export-parsers.ts";
import { createEnvelopeValidator, repoRoot } from "./helpers/tenable-http.ts";

// Public Tenable responses kept beside the repository. Every file must be
// read by the parser of its kind; the suite is skipped when the folder is
// absent.
const SAMPLES = resolve(repoRoot, "../shared/vendor-samples/tenable");
const present = existsSync(SAMPLES);
const files = present ? readdirSync(SAMPLES).sort() : [];
const NOW = new Date("2026-03-01T12:00:00Z");

function read(name: string): string {
  return readFileSync(resolve(SAMPLES, name), "utf8");
}

/** Returns the parser kind of a sample file, judged by its name. */
function kindOf(name: string): string {
  if (name.endsWith(".html") && name.includes("429")) return "throttle";
  if (name.includes("http-exchange")) return "exchange";
  if (name.includes("409")) return "conflict";
  if (name.includes("jobs-list")) return "jobs";
  if (name.includes("create")) return "created";
  if (name.includes("status")) return "status";
  if (name.includes("chunk")) return "chunk";
  return "unknown";
}

describe.skipIf(!present)("tenable vendor samples", () => {
  test("every sample has a parser", () => {
    expect(files.length).toBeGreaterThan(0);
    expect(files.filter((name) => kindOf(name) === "unknown")).toEqual([]);
  });

  for (const name of files.filter((file) => kindOf(file) === "chunk")) {
    test(`${name} gives valid envelopes`, () => {
      const findings = parseTenableChunk(read(name), {
        exportUuid: "sample",
        chunkId: 1,
      });
      const validate = createEnvelopeValidator();
      const errors = findings
        .map((finding) => toTenableRecord(finding, "default", NOW.toISOString()))
        .map((record) => validate(record.json))
        .filter((error) => error !== null);
      expect(findings.length).toBeGreaterThan(0);
      expect(errors).toEqual([]);
    });

    test(`${name} has one key per finding`, () => {
      const findings = parseTenableChunk(read(name), {
        exportUuid: "sample",
        chunkId: 1,
      });
      const keys = new Set(findings.map((finding) => finding.findingKey));
      expect(keys.size).toBe(findings.length);
    });
  }

  for (const name of files.filter((file) => kindOf(file) === "status")) {
    test(`${name} parses as a status`, () => {
      const status = parseExportStatus(JSON.parse(read(name)));
      expect(["QUEUED", "PROCESSING", "FINISHED"]).toContain(status.status);
    });
  }

  for (const name of files.filter((file) => kindOf(file) === "created")) {
    test(`${name} parses as a created export`, () => {
      expect(parseExportCreated(JSON.parse(read(name)))).toMatch(/^[0-9a-f-]{36}$/);
    });
  }

  for (const name of files.filter((file) => kindOf(file) === "conflict")) {
    test(`${name} names the active export`, () => {
      expect(parseExportConflict(JSON.parse(read(name)))).toMatch(/^[0-9a-f-]{36}$/);
    });
  }

  for (const name of files.filter((file) => kindOf(file) === "jobs")) {
    test(`${name} parses as a job list`, () => {
      const jobs = parseExportJobs(JSON.parse(read(name)));
      expect(jobs.length).toBeGreaterThan(0);
      expect(jobs.some((job) => job.status === "ERROR")).toBe(true);
    });
  }

  for (const name of files.filter((file) => kindOf(file) === "throttle")) {
    test(`${name} with retry-after is a rate throttle`, () => {
      const body = read(name);
      const response = new Response(body, {
        status: 429,
        headers: { "retry-after": "30", "content-type": "text/html" },
      });
      const signal = tenableProfile.parseThrottle(response, body, NOW);
      expect(signal).toEqual({ kind: "rate", waitMs: 30_000, reason: "http 429" });
    });
  }

  for (const name of files.filter((file) => kindOf(file) === "exchange")) {
    test(`${name} bodies parse by endpoint`, () => {
      const exchange = JSON.parse(read(name)) as {
        interactions: { method: string; uri: string; response_body: string }[];
      };
      let parsed = 0;
      for (const interaction of exchange.interactions) {
        const path = new URL(interaction.uri).pathname;
        if (interaction.method === "POST" && path === "/vulns/export") {
          parseExportCreated(JSON.parse(interaction.response_body));
          parsed++;
        } else if (path.endsWith("/status")) {
          parseExportStatus(JSON.parse(interaction.response_body));
          parsed++;
        }
      }
      expect(parsed).toBe(3);
    });
  }
});
