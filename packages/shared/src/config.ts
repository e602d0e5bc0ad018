import { readFileSync } from "node:fs";
import { ConfigError } from "./errors.ts";

/**
 * Declarative configuration shared by every vulnsub program. Each option is
 * declared once with its config-file key, environment variable, flag,
 * default, unit and help text. Values resolve in this order, first match
 * wins: flag, environment, config file (JSON, from `--config` or
 * VULNSUB_CONFIG), default. Every bad field is reported at once, also a
 * bad value that a higher-precedence source hides; unknown flags and file
 * keys are rejected, and the result is frozen.
 *
 * Secrets (`secret: true`) come only from the environment variable or from
 * a file named by `<ENV>_FILE`, never both; they have no flag and are never
 * printed.
 */
export interface OptionSpec<T> {
  /** Key in the config file and in the resulting object. */
  readonly key: string;
  /** Environment variable name. */
  readonly env: string;
  /** Flag name without dashes; omitted for secrets. */
  readonly flag?: string;
  /** Value when nothing sets the option; undefined makes it required. */
  readonly default?: T;
  /** Unit shown in --help, for example "ms" or "bytes". */
  readonly unit?: string;
  readonly description: string;
  readonly secret?: boolean;
  /** Parses a raw value (string from flag or env, JSON value from a file). */
  readonly parse: (raw: unknown) => T;
}

export type OptionSpecs = Record<string, OptionSpec<unknown>>;
export type ConfigOf<S extends OptionSpecs> = {
  readonly [K in keyof S]: S[K] extends OptionSpec<infer T> ? T : never;
};

export interface LoadConfigInput {
  argv?: readonly string[];
  env?: Readonly<Record<string, string | undefined>>;
}

export interface LoadedConfig<S extends OptionSpecs> {
  config: ConfigOf<S>;
  /** Arguments that are not flags, in order. */
  positionals: string[];
  help: boolean;
}

/** Resolves and validates options, throwing one ConfigError for all issues. */
export function loadConfig<S extends OptionSpecs>(
  specs: S,
  input: LoadConfigInput = {},
): LoadedConfig<S> {
  const env = input.env ?? process.env;
  const issues: string[] = [];
  const { flags, positionals, help } = parseArgv(input.argv ?? [], issues);
  const configPath = flags.get("config") ?? env.VULNSUB_CONFIG;
  flags.delete("config");
  const file = configPath ? readConfigFile(configPath, issues) : {};

  const knownFlags = new Set(
    Object.values(specs).flatMap((spec) => (spec.flag ? [spec.flag] : [])),
  );
  for (const flag of flags.keys()) {
    if (!knownFlags.has(flag)) issues.push(`--${flag}: unknown flag`);
  }
  const knownKeys = new Set(Object.values(specs).map((spec) => spec.key));
  for (const key of Object.keys(file)) {
    if (!knownKeys.has(key)) issues.push(`${configPath}: ${key}: unknown key`);
  }

  const config: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(specs)) {
    const resolved = resolveOption(spec, flags, env, file, configPath, issues);
    if (resolved.found) config[name] = resolved.value;
  }
  if (issues.length > 0 && !help) throw new ConfigError(issues);
  return {
    config: Object.freeze(config) as ConfigOf<S>,
    positionals,
    help,
  };
}

/** Formats --help text: every flag with its env name, default and unit. */
export function formatHelp(
  usage: string,
  specs: OptionSpecs,
  summary = "",
): string {
  const lines = [usage, ""];
  if (summary) lines.push(summary, "");
  lines.push("Options (flag, environment variable, default):");
  lines.push("  --config FILE   VULNSUB_CONFIG   JSON file with the keys below");
  for (const spec of Object.values(specs)) {
    const flag = spec.flag ? `--${spec.flag}` : "(no flag: secret)";
    const env = spec.secret ? `${spec.env} or ${spec.env}_FILE` : spec.env;
    const unit = spec.unit ? ` [${spec.unit}]` : "";
    const fallback =
      spec.default === undefined
        ? "required"
        : spec.secret
          ? "unset"
          : `default ${JSON.stringify(spec.default)}`;
    lines.push(`  ${flag}  ${env}  (${fallback})${unit}`);
    lines.push(`      ${spec.key}: ${spec.description}`);
  }
  return lines.join("\n");
}

// Every candidate source of an option is parsed, so a bad value hidden by
// a higher-precedence one is still reported. The first candidate wins.
function resolveOption(
  spec: OptionSpec<unknown>,
  flags: Map<string, string>,
  env: Readonly<Record<string, string | undefined>>,
  file: Record<string, unknown>,
  configPath: string | undefined,
  issues: string[],
): { found: boolean; value?: unknown } {
  const candidates = collectCandidates(spec, flags, env, file, configPath);
  issues.push(...candidates.issues);
  if (candidates.issues.length > 0) return { found: false };

  const first = candidates.values[0];
  if (!first) {
    if (spec.default === undefined) {
      if (!spec.secret) issues.push(`${spec.key} (${spec.env}): missing`);
      return { found: !!spec.secret, value: undefined };
    }
    return { found: true, value: spec.default };
  }
  const parsed = candidates.values.map(([origin, raw]) => {
    try {
      return { ok: true, value: spec.parse(raw) };
    } catch (error) {
      const shown = spec.secret ? "(secret)" : JSON.stringify(raw);
      issues.push(`${spec.key} from ${origin}: ${shown}: ${messageOf(error)}`);
      return { ok: false };
    }
  });
  const winner = parsed[0] as { ok: boolean; value?: unknown };
  return winner.ok ? { found: true, value: winner.value } : { found: false };
}

/** Raw values of an option by origin, highest precedence first. */
function collectCandidates(
  spec: OptionSpec<unknown>,
  flags: Map<string, string>,
  env: Readonly<Record<string, string | undefined>>,
  file: Record<string, unknown>,
  configPath: string | undefined,
): { values: [string, unknown][]; issues: string[] } {
  const values: [string, unknown][] = [];
  const issues: string[] = [];
  if (spec.flag && !spec.secret && flags.has(spec.flag)) {
    values.push([`--${spec.flag}`, flags.get(spec.flag)]);
  }
  // An empty variable counts as set, so `X_BASE_URL=` fails validation
  // instead of silently falling back to the default (a production host).
  if (env[spec.env] !== undefined) values.push([spec.env, env[spec.env]]);
  if (spec.secret) {
    const secret = readSecretFile(spec.key, spec.env, env);
    if (secret.issue) issues.push(secret.issue);
    else if (secret.value !== undefined) {
      values.push([`${spec.env}_FILE`, secret.value]);
    }
  }
  if (spec.key in file && !spec.secret) {
    values.push([`${configPath}: ${spec.key}`, file[spec.key]]);
  } else if (spec.key in file) {
    issues.push(
      `${configPath}: ${spec.key}: secrets are read only from ${spec.env} or ${spec.env}_FILE`,
    );
  }
  return { values, issues };
}

// Never returns the secret in an issue.
function readSecretFile(
  key: string,
  name: string,
  env: Readonly<Record<string, string | undefined>>,
): { value?: string; issue?: string } {
  const path = env[`${name}_FILE`];
  if (path === undefined) return {};
  if (env[name] !== undefined) {
    return { issue: `${key}: set either ${name} or ${name}_FILE, not both` };
  }
  try {
    return { value: readFileSync(path, "utf8").trim() };
  } catch (error) {
    return { issue: `${name}_FILE: cannot read ${path}: ${messageOf(error)}` };
  }
}

function parseArgv(argv: readonly string[], issues: string[]) {
  const flags = new Map<string, string>();
  const positionals: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--help" || arg === "-h") {
      help = true;
      continue;
    }
    if (!arg.startsWith("--")) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    if (eq > 0) {
      flags.set(arg.slice(2, eq), arg.slice(eq + 1));
      continue;
    }
    const next = argv[i + 1];
    if (next === undefined || next.startsWith("--")) {
      // A bare flag is a boolean switch.
      flags.set(arg.slice(2), "true");
      continue;
    }
    flags.set(arg.slice(2), next);
    i++;
  }
  if (flags.has("help")) issues.push("--help takes no value");
  return { flags, positionals, help };
}

function readConfigFile(path: string, issues: string[]) {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    issues.push(`config file ${path}: cannot read: ${messageOf(error)}`);
    return {};
  }
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      issues.push(`config file ${path}: expected a JSON object`);
      return {};
    }
    return value as Record<string, unknown>;
  } catch (error) {
    issues.push(`config file ${path}: invalid JSON: ${messageOf(error)}`);
    return {};
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// Parsers for OptionSpec.parse. Each throws an Error whose message names
// the expected form, and loadConfig adds the key, origin and value.

export function parseInteger(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (raw: unknown): number => {
    const text = typeof raw === "number" ? String(raw) : String(raw).trim();
    const value = text === "" ? Number.NaN : Number(text);
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new Error(`expected an integer from ${min} to ${max}`);
    }
    return value;
  };
}

export function parseBoolean(raw: unknown): boolean {
  if (raw === true || raw === "true" || raw === "1") return true;
  if (raw === false || raw === "false" || raw === "0") return false;
  throw new Error("expected true or false");
}

export function parseString(raw: unknown): string {
  if (typeof raw !== "string") throw new Error("expected a string");
  return raw;
}

export function parseNonEmptyString(raw: unknown): string {
  const value = parseString(raw).trim();
  if (value === "") throw new Error("expected a non-empty string");
  return value;
}

export function parseEnum<const T extends string>(values: readonly T[]) {
  return (raw: unknown): T => {
    if (typeof raw === "string" && (values as readonly string[]).includes(raw)) {
      return raw as T;
    }
    throw new Error(`expected one of ${values.join(", ")}`);
  };
}

/** Parses host:port; IPv6 hosts are bracketed, as in "[::1]:50051". */
export function parseHostPort(raw: unknown): { host: string; port: number } {
  const text = parseNonEmptyString(raw);
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(text);
  const port = Number(match?.[2]);
  if (!match || port > 65535) {
    throw new Error("expected host:port, for example 127.0.0.1:50051");
  }
  return { host: (match[1] as string).replace(/^\[|\]$/g, ""), port };
}

/** Parses an http(s) URL and returns it without a trailing slash. */
export function parseUrl(raw: unknown): string {
  const text = parseNonEmptyString(raw);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error("expected an absolute URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error("expected an http or https URL");
  }
  return text.replace(/\/+$/, "");
}
