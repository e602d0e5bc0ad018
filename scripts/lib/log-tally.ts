// Counts the problems of a findings log line by line for verify-log:
// invalid lines, duplicated identities, and, given ground truth, lost and
// unexpected finding versions, in total and per job (vendor:source). Lost
// and unexpected are counted only for the jobs that have ground truth;
// lines of other jobs are not checked.
import type { GroundTruthSet } from "./ground-truth.ts";

/** A count of one kind of problem with its first few examples. */
export interface ProblemFigure<T> {
  count: number;
  examples: T[];
}

export interface LineProblem {
  line: number;
  reason: string;
}

export interface VendorFigures {
  /** False when no ground truth covers this job: no lost or unexpected. */
  checked: boolean;
  lines: number;
  served: number;
  duplicated: number;
  lost: number;
  unexpected: number;
}

type Identity = {
  vendor: string;
  source: string;
  findingKey: string;
  version: string;
};

export function createLogTally(
  groundTruth: readonly GroundTruthSet[] | undefined,
  maxExamples: number,
) {
  const served = new Map<string, number>();
  const servedJob: string[] = [];
  const servedLabel: string[] = [];
  const byVendor: Record<string, VendorFigures> = {};
  const checkedJobs = new Set(
    (groundTruth ?? []).map((set) => `${set.vendor}:${set.source}`),
  );
  const jobFigures = (job: string) =>
    (byVendor[job] ??= {
      checked: checkedJobs.has(job),
      lines: 0,
      served: 0,
      duplicated: 0,
      lost: 0,
      unexpected: 0,
    });

  for (const set of groundTruth ?? []) {
    const job = `${set.vendor}:${set.source}`;
    for (const item of set.served) {
      const key = identityKey({ ...set, ...item });
      if (served.has(key)) continue;
      served.set(key, servedJob.length);
      servedJob.push(job);
      servedLabel.push(`${job} ${item.findingKey} ${item.version}`);
      jobFigures(job).served++;
    }
  }
  const seenServed = new Uint8Array(servedJob.length);
  const seenOther = new Set<bigint>();

  const invalid = createFigure<LineProblem>(maxExamples);
  const duplicated = createFigure<LineProblem>(maxExamples);
  const unexpected = createFigure<LineProblem>(maxExamples);

  return {
    invalid: (line: number, reason: string) => invalid.add({ line, reason }),

    identity(line: number, value: Record<string, unknown>) {
      const identity = pickIdentity(value);
      if (!identity) return;
      const job = `${identity.vendor}:${identity.source}`;
      const figures = jobFigures(job);
      figures.lines++;
      const key = identityKey(identity);
      const reason = `${job} ${identity.findingKey} ${identity.version}`;

      const index = served.get(key);
      const repeated =
        index === undefined
          ? !addOther(seenOther, key)
          : seenServed[index]! > 0;
      if (index !== undefined) seenServed[index] = 1;
      if (repeated) {
        figures.duplicated++;
        duplicated.add({ line, reason: `duplicate ${reason}` });
      }
      if (index === undefined && figures.checked && !repeated) {
        figures.unexpected++;
        unexpected.add({ line, reason: `never served: ${reason}` });
      }
    },

    finish() {
      const lost = createFigure<string>(maxExamples);
      for (let i = 0; i < seenServed.length; i++) {
        if (seenServed[i]) continue;
        jobFigures(servedJob[i]!).lost++;
        lost.add(`lost ${servedLabel[i]}`);
      }
      const result = {
        invalid: invalid.value(),
        duplicated: duplicated.value(),
        lost: groundTruth ? lost.value() : null,
        unexpected: groundTruth ? unexpected.value() : null,
        notChecked: groundTruth ? notCheckedJobs(byVendor) : [],
        byVendor,
      };
      const ok =
        result.invalid.count === 0 &&
        result.duplicated.count === 0 &&
        (result.lost?.count ?? 0) === 0 &&
        (result.unexpected?.count ?? 0) === 0;
      return { ...result, ok };
    },
  };
}

function notCheckedJobs(byVendor: Record<string, VendorFigures>): string[] {
  return Object.entries(byVendor)
    .filter(([, figures]) => !figures.checked)
    .map(([job]) => job);
}

function createFigure<T>(maxExamples: number) {
  const figure: ProblemFigure<T> = { count: 0, examples: [] };
  return {
    add(example: T) {
      figure.count++;
      if (figure.examples.length < maxExamples) figure.examples.push(example);
    },
    value: () => figure,
  };
}

/**
 * Adds a 64-bit hash of the identity; returns false when it was there.
 * NOTE: two different identities with the same hash (probability about
 * n^2 / 2^65 for n lines) would be reported as one duplicate.
 */
function addOther(seen: Set<bigint>, key: string): boolean {
  const hash = BigInt(Bun.hash.wyhash(key));
  if (seen.has(hash)) return false;
  seen.add(hash);
  return true;
}

function identityKey(identity: Identity): string {
  return [
    identity.vendor,
    identity.source,
    identity.findingKey,
    identity.version,
  ].join("\u0000");
}

function pickIdentity(value: Record<string, unknown>): Identity | undefined {
  const { vendor, source, findingKey, version } = value;
  if (
    typeof vendor !== "string" ||
    typeof source !== "string" ||
    typeof findingKey !== "string" ||
    typeof version !== "string"
  ) {
    return undefined;
  }
  return { vendor, source, findingKey, version };
}
