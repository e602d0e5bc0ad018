// Checks a findings log (vulnerabilities.jsonl) against the log contract.
// Every line is one JSON object valid against schema/finding.schema.json,
// and no (vendor, source, findingKey, version) appears twice. Given the
// simulators' ground truth, every served version is in the log (none
// lost) and nothing else is (none unexpected), for the (vendor, source)
// jobs the ground truth covers; lines of other jobs are not checked.
// Lost and unexpected are exact only when no cycle is in flight.
//
// CLI: bun scripts/verify-log.ts --log FILE [--ground-truth [vendor=]URL]...
// prints the figures and exits 1 on any problem.
import { resolve } from "node:path";
import Ajv2020 from "ajv/dist/2020";
import addFormats from "ajv-formats";
import {
  fetchGroundTruth,
  parseGroundTruthArgument,
  type GroundTruthSet,
} from "./lib/ground-truth.ts";
import {
  createLogTally,
  type LineProblem,
  type ProblemFigure,
  type VendorFigures,
} from "./lib/log-tally.ts";
import { readLines } from "./lib/read-lines.ts";

export type { GroundTruthSet } from "./lib/ground-truth.ts";
export type {
  LineProblem,
  ProblemFigure,
  VendorFigures,
} from "./lib/log-tally.ts";

export interface VerifyLogInput {
  logPath: string;
  /** Omitted: lost and unexpected are not checked (reported as null). */
  groundTruth?: readonly GroundTruthSet[];
  /** Defaults to schema/finding.schema.json in this repository. */
  schemaPath?: string;
  /** Examples kept per problem kind; default 5. */
  maxExamples?: number;
}

export interface VerifyLogResult {
  logPath: string;
  lines: number;
  /** Not JSON, not an object, or failing the schema; a torn tail counts. */
  invalid: ProblemFigure<LineProblem>;
  /** Lines repeating an identity seen on an earlier line. */
  duplicated: ProblemFigure<LineProblem>;
  /** Served versions with no line; null without ground truth. */
  lost: ProblemFigure<string> | null;
  /** Lines whose identity was never served; null without ground truth. */
  unexpected: ProblemFigure<LineProblem> | null;
  /**
   * Jobs ("vendor:source") with lines but no ground truth: their lost and
   * unexpected are not checked. Empty without ground truth.
   */
  notChecked: string[];
  /** True when the last line has no "\n". */
  tornTail: boolean;
  /** Keyed by "vendor:source". */
  byVendor: Record<string, VendorFigures>;
  ok: boolean;
}

export const DEFAULT_SCHEMA_PATH = resolve(
  import.meta.dir,
  "../schema/finding.schema.json",
);

/**
 * Streams the log once. Served identities are matched exactly; identities
 * outside the ground truth are remembered as 64-bit hashes to find their
 * duplicates.
 */
export async function verifyLog(
  input: VerifyLogInput,
): Promise<VerifyLogResult> {
  const maxExamples = input.maxExamples ?? 5;
  const validate = await compileSchema(input.schemaPath ?? DEFAULT_SCHEMA_PATH);
  const tally = createLogTally(input.groundTruth, maxExamples);
  let lines = 0;
  let tornTail = false;

  for await (const line of readLines(input.logPath)) {
    lines = line.number;
    if (!line.terminated) {
      tornTail = true;
      tally.invalid(line.number, "torn last line: no newline at end of file");
      continue;
    }
    const parsed = parseLine(line.text);
    if (typeof parsed === "string") {
      tally.invalid(line.number, parsed);
      continue;
    }
    if (!validate(parsed)) {
      tally.invalid(
        line.number,
        `schema: ${formatSchemaErrors(validate.errors)}`,
      );
    }
    tally.identity(line.number, parsed);
  }

  return { logPath: input.logPath, lines, tornTail, ...tally.finish() };
}

/** Formats a result as the lines the CLI and the demo print. */
export function formatVerifyResult(result: VerifyLogResult): string[] {
  const out = [`log ${result.logPath}: ${result.lines} lines`];
  const figure = (name: string, value: ProblemFigure<unknown> | null) => {
    if (!value)
      return out.push(`  ${name.padEnd(11)} not checked (no ground truth)`);
    out.push(`  ${name.padEnd(11)} ${value.count}`);
    for (const example of value.examples) {
      out.push(
        `      ${typeof example === "string" ? example : formatProblem(example)}`,
      );
    }
  };
  figure("invalid", result.invalid);
  figure("duplicated", result.duplicated);
  figure("lost", result.lost);
  figure("unexpected", result.unexpected);
  if (result.notChecked.length > 0) {
    out.push(`  not checked ${result.notChecked.join(", ")} (no ground truth)`);
  }
  for (const [job, figures] of Object.entries(result.byVendor)) {
    const checked = !result.lost
      ? ""
      : figures.checked
        ? `, served ${figures.served}, lost ${figures.lost}, ` +
          `unexpected ${figures.unexpected}`
        : ", lost and unexpected not checked (no ground truth)";
    out.push(
      `  ${job.padEnd(20)} lines ${figures.lines}, ` +
        `duplicated ${figures.duplicated}${checked}`,
    );
  }
  out.push(result.ok ? "verify-log: ok" : "verify-log: FAILED");
  return out;
}

/** Returns the parsed object, or the reason the line is not one. */
function parseLine(text: string): Record<string, unknown> | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return `not JSON: ${(error as Error).message}`;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return "not a JSON object";
  }
  return value as Record<string, unknown>;
}

async function compileSchema(path: string) {
  const schema: unknown = await Bun.file(path).json();
  const ajv = new Ajv2020({ allErrors: false, strict: true });
  addFormats(ajv);
  return ajv.compile(schema as object);
}

function formatSchemaErrors(
  errors:
    | readonly { instancePath: string; message?: string }[]
    | null
    | undefined,
): string {
  const first = errors?.[0];
  if (!first) return "invalid";
  return `${first.instancePath || "/"} ${first.message ?? "is invalid"}`;
}

function formatProblem(problem: unknown): string {
  const { line, reason } = problem as LineProblem;
  return `line ${line}: ${reason}`;
}

if (import.meta.main) {
  process.exit(await runCli(process.argv.slice(2)));
}

async function runCli(argv: string[]): Promise<number> {
  const usage =
    "usage: bun scripts/verify-log.ts --log FILE " +
    "[--ground-truth [vendor=]URL]... [--source NAME] [--schema FILE] " +
    "[--json]\n\n" +
    "Lost and unexpected are checked only for the vendor and source of " +
    "each --ground-truth;\nlines of others are reported as not checked. " +
    "They are exact only when no cycle is\nin flight: run this after the " +
    "pollers stopped or completed a cycle.";
  const args = parseCliArgs(argv);
  if (args === undefined || args.help) {
    console.error(usage);
    return args?.help ? 0 : 2;
  }

  try {
    const groundTruth = await Promise.all(
      args.groundTruth.map((argument) => {
        const { vendor, url } = parseGroundTruthArgument(argument);
        return fetchGroundTruth(url, { vendor, source: args.source });
      }),
    );
    const result = await verifyLog({
      logPath: args.log,
      groundTruth: groundTruth.length > 0 ? groundTruth : undefined,
      schemaPath: args.schema,
    });
    if (args.json) console.log(JSON.stringify(result));
    else console.log(formatVerifyResult(result).join("\n"));
    return result.ok ? 0 : 1;
  } catch (error) {
    console.error(`verify-log: ${(error as Error).message}`);
    return 1;
  }
}

function parseCliArgs(argv: string[]) {
  const args = {
    log: "",
    groundTruth: [] as string[],
    source: "default",
    schema: undefined as string | undefined,
    json: false,
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === "--help" || flag === "-h") args.help = true;
    else if (flag === "--json") args.json = true;
    else if (value === undefined) return undefined;
    else if (flag === "--log") args.log = value;
    else if (flag === "--ground-truth") args.groundTruth.push(value);
    else if (flag === "--source") args.source = value;
    else if (flag === "--schema") args.schema = value;
    else return undefined;
    if (flag !== "--help" && flag !== "-h" && flag !== "--json") i++;
  }
  return args.log || args.help ? args : undefined;
}
