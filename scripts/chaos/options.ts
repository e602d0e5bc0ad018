// Command line and presets of the chaos suite. A run is fully described by
// its options: the seed and the preset fix every random choice of the
// harness, so `formatReplayCommand` prints the command that replays it.

export type ChaosMode = "short" | "default" | "long";

export interface ChaosOptions {
  mode: ChaosMode;
  /** Seed of the harness PRNG and of the simulators' datasets. */
  seed: number;
  /** SIGKILLs of the flusher or a poller to perform before quiescing. */
  kills: number;
  /** Pollers per vendor: one holds the job lock, the rest stand by. */
  pollersPerVendor: number;
  assets: number;
  findingsPerAsset: number;
  /** Quota each simulator audits (and enforces with 429). */
  quota: { requests: number; windowMs: number };
  /** Requests per quota window the pollers allow themselves, together. */
  pollerRequestsPerWindow: number;
  pollIntervalMs: number;
  lockStaleMs: number;
  /** Life of a ready Tenable chunk; small, so chunks expire. */
  chunkTtlMs: number;
  /** Poller wait for response headers and per body chunk. */
  requestTimeoutMs: number;
  /** Pause before each chaos step, drawn uniformly from [min, max]. */
  stepGapMs: { min: number; max: number };
  /** Length of one fault phase, drawn uniformly from [min, max]. */
  phaseMs: { min: number; max: number };
  /** Cap of the chaos phase; steps left after it are skipped. */
  maxChaosMs: number;
  /** Cap of the wait for one clean cycle per vendor at the end. */
  quiesceTimeoutMs: number;
  /** Cap of the wait for a trigger event (an ack, a fetched page). */
  triggerTimeoutMs: number;
  /** Keep the temp dir even when every check passed. */
  keep: boolean;
  /** Print the plan and exit without running anything. */
  planOnly: boolean;
}

export const CHAOS_USAGE =
  "usage: bun run chaos [--seed N] [--kills N] [--short | --long] " +
  "[--keep] [--plan]";

export const CHAOS_HELP = [
  CHAOS_USAGE,
  "",
  "Runs the flusher and pollers against the vendor simulators, kills and",
  "pauses them, restarts Redis and injects vendor faults, then checks the",
  "findings log: lost, duplicated, invalid, quota and secrets must be 0.",
  "",
  "  --seed N    seed of every random choice (default: drawn and printed)",
  "  --kills N   SIGKILLs of the flusher and pollers (short 8, default 30,",
  "              long 200)",
  "  --short     small dataset, 2 pollers per vendor, a few minutes",
  "  --long      200 kills, 3 pollers per vendor, about 30 minutes",
  "  --keep      keep the temp dir (logs, data, state) after a passing run",
  "  --plan      print the planned steps and fault phases, run nothing",
].join("\n");

const SECOND = 1_000;
const MINUTE = 60 * SECOND;

/** Returns the options of a mode before flags override them. */
export function presetOptions(mode: ChaosMode, seed: number): ChaosOptions {
  const common = {
    mode,
    seed,
    findingsPerAsset: 5,
    // Compressed quota: 60 requests per 10 s instead of the vendors' hours.
    quota: { requests: 60, windowMs: 10 * SECOND },
    pollerRequestsPerWindow: 48,
    pollIntervalMs: 1_500,
    lockStaleMs: 4_000,
    chunkTtlMs: 2_500,
    requestTimeoutMs: 4_000,
    stepGapMs: { min: 2 * SECOND, max: 7 * SECOND },
    triggerTimeoutMs: 20 * SECOND,
    keep: false,
    planOnly: false,
  };
  switch (mode) {
    case "short":
      return {
        ...common,
        kills: 8,
        pollersPerVendor: 2,
        assets: 80,
        // Short phases, so every fault profile runs within a short run.
        phaseMs: { min: 4 * SECOND, max: 6 * SECOND },
        stepGapMs: { min: 3 * SECOND, max: 8 * SECOND },
        maxChaosMs: 150 * SECOND,
        quiesceTimeoutMs: 90 * SECOND,
      };
    case "default":
      return {
        ...common,
        kills: 30,
        pollersPerVendor: 3,
        assets: 150,
        phaseMs: { min: 4 * SECOND, max: 12 * SECOND },
        maxChaosMs: 10 * MINUTE,
        quiesceTimeoutMs: 3 * MINUTE,
      };
    case "long":
      return {
        ...common,
        kills: 200,
        pollersPerVendor: 3,
        assets: 200,
        stepGapMs: { min: 1_500, max: 5 * SECOND },
        phaseMs: { min: 4 * SECOND, max: 12 * SECOND },
        maxChaosMs: 30 * MINUTE,
        quiesceTimeoutMs: 4 * MINUTE,
      };
  }
}

/**
 * Parses the command line. Returns "help" for --help, or throws an Error
 * whose message names the bad argument.
 */
export function parseChaosArgs(
  argv: readonly string[],
  drawSeed: () => number = defaultSeed,
): ChaosOptions | "help" {
  let mode: ChaosMode | undefined;
  let seed: number | undefined;
  let kills: number | undefined;
  let keep = false;
  let planOnly = false;

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") return "help";
    if (arg === "--keep") keep = true;
    else if (arg === "--plan") planOnly = true;
    else if (arg === "--short" || arg === "--long") {
      const next: ChaosMode = arg === "--short" ? "short" : "long";
      if (mode && mode !== next) {
        throw new Error("--short and --long exclude each other");
      }
      mode = next;
    } else if (arg === "--seed" || arg === "--kills") {
      const value = parseCount(arg, argv[i + 1]);
      if (arg === "--seed") seed = value;
      else kills = value;
      i++;
    } else {
      throw new Error(`unknown argument ${JSON.stringify(arg)}`);
    }
  }

  const options = presetOptions(mode ?? "default", seed ?? drawSeed());
  const chosenKills = kills ?? options.kills;
  return {
    ...options,
    kills: chosenKills,
    // 12 s per kill covers the gap, a trigger wait and the restart.
    maxChaosMs: Math.max(options.maxChaosMs, chosenKills * 12 * SECOND),
    keep,
    planOnly,
  };
}

/** Returns the command that replays a run with the same choices. */
export function formatReplayCommand(options: ChaosOptions): string {
  const parts = ["bun run chaos", `--seed ${options.seed}`];
  if (options.mode !== "default") parts.push(`--${options.mode}`);
  if (options.kills !== presetOptions(options.mode, 0).kills) {
    parts.push(`--kills ${options.kills}`);
  }
  return parts.join(" ");
}

function parseCount(flag: string, raw: string | undefined): number {
  if (raw === undefined || !/^\d+$/.test(raw)) {
    throw new Error(`${flag}: expected a whole number, got ${raw ?? "nothing"}`);
  }
  const value = Number(raw);
  if (value > 2 ** 32 - 1) {
    throw new Error(`${flag}: ${raw} is above the maximum ${2 ** 32 - 1}`);
  }
  return value;
}

function defaultSeed(): number {
  return Math.floor(Math.random() * 2 ** 31);
}
