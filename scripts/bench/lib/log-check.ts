// Compares a findings log with a simulator's ground truth after a bench:
// every served finding version must be in the log exactly once, and the
// log must hold nothing else. Reads the log as a stream, so a log of
// gigabytes needs memory only for the served identities.
import { statSync } from "node:fs";
import { readLines } from "../../lib/read-lines.ts";

/** One finding version a simulator served. */
export interface ServedIdentity {
  findingKey: string;
  version: string;
}

/** Result of a log check; the log is correct when `ok` is true. */
export interface LogCheck {
  ok: boolean;
  lines: number;
  bytes: number;
  served: number;
  /** Served versions found exactly once. */
  matched: number;
  /** Served versions absent from the log. */
  lost: number;
  /** Log lines repeating an identity already seen. */
  duplicated: number;
  /** Log lines of an identity the simulator did not serve. */
  unexpected: number;
  /** Lines that are not a JSON object with findingKey and version. */
  invalid: number;
}

/** Checks `logPath` against `served`; only lines of `vendor` count. */
export async function checkFindingsLog(
  logPath: string,
  served: readonly ServedIdentity[],
  vendor: string,
): Promise<LogCheck> {
  const index = new Map<string, number>();
  for (const item of served) {
    index.set(identityOf(item.findingKey, item.version), index.size);
  }
  const seen = new Uint8Array(index.size);
  const others = new Set<string>();
  const counts = { lines: 0, duplicated: 0, unexpected: 0, invalid: 0 };

  for await (const line of readLines(logPath)) {
    counts.lines++;
    const identity = parseIdentity(line.text, vendor);
    if (!identity || !line.terminated) {
      counts.invalid++;
      continue;
    }

    const position = index.get(identity);
    if (position === undefined) {
      if (others.has(identity)) counts.duplicated++;
      else counts.unexpected++;
      others.add(identity);
    } else if (seen[position] === 1) {
      counts.duplicated++;
    } else {
      seen[position] = 1;
    }
  }

  const matched = seen.reduce((sum, flag) => sum + flag, 0);
  const lost = index.size - matched;
  const problems = lost + counts.duplicated + counts.unexpected + counts.invalid;
  return {
    ok: problems === 0,
    ...counts,
    bytes: statSync(logPath).size,
    served: index.size,
    matched,
    lost,
  };
}

/** Formats a check as one line for the bench output. */
export function describeLogCheck(check: LogCheck): string {
  const verdict = check.ok ? "ok" : "FAILED";
  return (
    `log check ${verdict}: ${check.lines} lines, ${check.served} served, ` +
    `${check.matched} matched once, ${check.lost} lost, ` +
    `${check.duplicated} duplicated, ${check.unexpected} unexpected, ` +
    `${check.invalid} invalid`
  );
}

function parseIdentity(text: string, vendor: string): string | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;

  const record = value as Record<string, unknown>;
  if (record.vendor !== vendor) return null;
  if (typeof record.findingKey !== "string") return null;
  if (typeof record.version !== "string") return null;
  return identityOf(record.findingKey, record.version);
}

function identityOf(findingKey: string, version: string): string {
  return `${findingKey}\u0000${version}`;
}
