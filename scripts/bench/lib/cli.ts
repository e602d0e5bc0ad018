// Command-line parsing and number formatting shared by the benches.

/** Kind of value a flag takes: a switch, a whole number, a number, a text. */
export type FlagKind = "boolean" | "integer" | "number" | "string";

type FlagValue<Kind extends FlagKind> = Kind extends "boolean"
  ? boolean
  : Kind extends "integer" | "number"
    ? number | undefined
    : string | undefined;

export type ParsedFlags<Spec extends Record<string, FlagKind>> = {
  [Name in keyof Spec]: FlagValue<Spec[Name]>;
};

/**
 * Parses `--name value` and `--name` switches per `spec`. Prints `usage`
 * and exits with 2 on an unknown flag, a missing value, or a number that
 * is negative (or, for an integer, not a whole number).
 */
export function parseFlags<Spec extends Record<string, FlagKind>>(
  argv: readonly string[],
  spec: Spec,
  usage: string,
): ParsedFlags<Spec> {
  const values: Record<string, boolean | number | string | undefined> = {};
  for (const [name, kind] of Object.entries(spec)) {
    values[name] = kind === "boolean" ? false : undefined;
  }

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const name = arg.startsWith("--") ? arg.slice(2) : "";
    const kind = spec[name];
    if (!kind) exitWithUsage(`unknown argument ${JSON.stringify(arg)}`, usage);
    if (kind === "boolean") {
      values[name] = true;
      continue;
    }

    const text = argv[++i];
    if (text === undefined) exitWithUsage(`${arg}: missing value`, usage);
    values[name] =
      kind === "string" ? text : parseNumber(arg, text, kind, usage);
  }
  return values as ParsedFlags<Spec>;
}

/** Prints one line to stderr and exits with 1. */
export function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

/** 1234567 -> "1,234,567". */
export function formatCount(value: number): string {
  return Math.round(value).toLocaleString("en-US");
}

/** Bytes in MiB or GiB with one decimal: "812.4 MiB", "2.6 GiB". */
export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** Seconds with two decimals: "12.34 s". */
export function formatSeconds(seconds: number): string {
  return `${seconds.toFixed(2)} s`;
}

function parseNumber(
  flag: string,
  text: string,
  kind: "integer" | "number",
  usage: string,
): number {
  const value = Number(text.replaceAll("_", ""));
  const valid =
    kind === "integer" ? Number.isSafeInteger(value) : Number.isFinite(value);
  if (text.trim() === "" || !valid || value < 0) {
    const expected = kind === "integer" ? "a whole number" : "a number";
    exitWithUsage(
      `${flag}: invalid value ${JSON.stringify(text)}, expected ${expected} >= 0`,
      usage,
    );
  }
  return value;
}

function exitWithUsage(message: string, usage: string): never {
  console.error(`${message}\n${usage}`);
  process.exit(2);
}
