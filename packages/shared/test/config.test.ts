import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ConfigError,
  formatHelp,
  loadConfig,
  parseHostPort,
  parseInteger,
  parseNonEmptyString,
  parseUrl,
} from "../src/index.ts";

const folder = mkdtempSync(join(tmpdir(), "vulnsub-config-"));
afterAll(() => rmSync(folder, { recursive: true, force: true }));

const specs = {
  listen: {
    key: "listen",
    env: "TEST_LISTEN",
    flag: "listen",
    default: { host: "127.0.0.1", port: 50051 },
    description: "listen address",
    parse: parseHostPort,
  },
  batchSize: {
    key: "batchSize",
    env: "TEST_BATCH_SIZE",
    flag: "batch-size",
    default: 500,
    unit: "records",
    description: "records per batch",
    parse: parseInteger(1, 10_000),
  },
  baseUrl: {
    key: "baseUrl",
    env: "TEST_BASE_URL",
    flag: "base-url",
    default: "https://vendor.example.invalid",
    description: "vendor API",
    parse: parseUrl,
  },
  password: {
    key: "password",
    env: "TEST_PASSWORD",
    secret: true,
    description: "vendor password",
    parse: parseNonEmptyString,
  },
};

function issuesOf(run: () => unknown): readonly string[] {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  test("defaults apply when nothing is set", () => {
    const { config } = loadConfig(specs, { argv: [], env: {} });
    expect(config.batchSize).toBe(500);
    expect(config.password).toBeUndefined();
    expect(Object.isFrozen(config)).toBe(true);
  });

  test("flag beats env beats file", () => {
    const file = join(folder, "precedence.json");
    writeFileSync(file, JSON.stringify({ batchSize: 7, listen: "[::1]:9" }));
    const { config } = loadConfig(specs, {
      argv: ["--config", file, "--batch-size", "9"],
      env: { TEST_BATCH_SIZE: "8" },
    });
    expect(config.batchSize).toBe(9);
    expect(config.listen).toEqual({ host: "::1", port: 9 });
  });

  test("every bad field is reported at once", () => {
    const issues = issuesOf(() =>
      loadConfig(specs, {
        argv: ["--batch-size", "0", "--nope", "1"],
        env: { TEST_LISTEN: "localhost", TEST_BASE_URL: "ftp://x" },
      }),
    );
    expect(issues.some((issue) => issue.startsWith("--nope"))).toBe(true);
    expect(issues.some((issue) => issue.startsWith("batchSize"))).toBe(true);
    expect(issues.some((issue) => issue.startsWith("listen"))).toBe(true);
    expect(issues.some((issue) => issue.startsWith("baseUrl"))).toBe(true);
  });

  test("empty variable is rejected, not defaulted", () => {
    const issues = issuesOf(() =>
      loadConfig(specs, { env: { TEST_BASE_URL: "", TEST_BATCH_SIZE: " " } }),
    );
    expect(issues.some((issue) => issue.includes("TEST_BASE_URL"))).toBe(true);
    expect(issues.some((issue) => issue.includes("TEST_BATCH_SIZE"))).toBe(
      true,
    );
  });

  test("bad file value hidden by env is reported", () => {
    const file = join(folder, "hidden.json");
    writeFileSync(file, JSON.stringify({ batchSize: "x" }));
    const issues = issuesOf(() =>
      loadConfig(specs, {
        argv: ["--config", file],
        env: { TEST_BATCH_SIZE: "5" },
      }),
    );
    expect(issues.length).toBe(1);
    expect(issues[0]).toContain(`batchSize from ${file}: batchSize: "x"`);
  });

  test("bad env hidden by flag is reported", () => {
    const issues = issuesOf(() =>
      loadConfig(specs, {
        argv: ["--batch-size", "5"],
        env: { TEST_BATCH_SIZE: "0" },
      }),
    );
    expect(issues).toEqual([
      'batchSize from TEST_BATCH_SIZE: "0": expected an integer from 1 to 10000',
    ]);
  });

  test("every bad source of one option is reported", () => {
    const file = join(folder, "all-bad.json");
    writeFileSync(file, JSON.stringify({ batchSize: -1 }));
    const issues = issuesOf(() =>
      loadConfig(specs, {
        argv: ["--config", file, "--batch-size", "x"],
        env: { TEST_BATCH_SIZE: "0" },
      }),
    );
    expect(issues.length).toBe(3);
    expect(issues[0]).toContain("from --batch-size");
    expect(issues[1]).toContain("from TEST_BATCH_SIZE");
    expect(issues[2]).toContain(`from ${file}`);
  });

  test("first valid source wins over valid lower ones", () => {
    const file = join(folder, "lower.json");
    writeFileSync(file, JSON.stringify({ batchSize: 7 }));
    const { config } = loadConfig(specs, {
      argv: ["--config", file],
      env: { TEST_BATCH_SIZE: "8" },
    });
    expect(config.batchSize).toBe(8);
  });

  test("unknown file key is rejected", () => {
    const file = join(folder, "unknown.json");
    writeFileSync(file, JSON.stringify({ batchSise: 5 }));
    const issues = issuesOf(() =>
      loadConfig(specs, { argv: ["--config", file], env: {} }),
    );
    expect(issues[0]).toContain("batchSise: unknown key");
  });

  test("secret comes from a _FILE and is never echoed", () => {
    const secretFile = join(folder, "password");
    writeFileSync(secretFile, "hunter2\n");
    const { config } = loadConfig(specs, {
      env: { TEST_PASSWORD_FILE: secretFile },
    });
    expect(config.password).toBe("hunter2");

    const issues = issuesOf(() =>
      loadConfig(specs, { env: { TEST_PASSWORD: " ", TEST_BATCH_SIZE: "x" } }),
    );
    expect(issues.join("\n")).toContain("(secret)");
  });

  test("secret set both directly and by _FILE", () => {
    const secretFile = join(folder, "both-password");
    writeFileSync(secretFile, "from-file\n");
    const issues = issuesOf(() =>
      loadConfig(specs, {
        env: { TEST_PASSWORD: "from-env", TEST_PASSWORD_FILE: secretFile },
      }),
    );
    expect(issues).toEqual([
      "password: set either TEST_PASSWORD or TEST_PASSWORD_FILE, not both",
    ]);
  });

  test("empty secret is reported as bad, not missing", () => {
    const issues = issuesOf(() =>
      loadConfig(specs, { env: { TEST_PASSWORD: "" } }),
    );
    expect(issues).toEqual([
      "password from TEST_PASSWORD: (secret): expected a non-empty string",
    ]);
  });

  test("secret in the config file is rejected", () => {
    const file = join(folder, "secret.json");
    writeFileSync(file, JSON.stringify({ password: "hunter2" }));
    const issues = issuesOf(() =>
      loadConfig(specs, { argv: ["--config", file], env: {} }),
    );
    expect(issues.join("\n")).toContain("secrets are read only from");
    expect(issues.join("\n")).not.toContain("hunter2");
  });

  test("secret has no flag", () => {
    const issues = issuesOf(() =>
      loadConfig(specs, { argv: ["--password", "hunter2"], env: {} }),
    );
    expect(issues).toEqual(["--password: unknown flag"]);
  });

  test("help lists env, default and unit", () => {
    const help = formatHelp("usage: test", specs);
    expect(help).toContain("--batch-size  TEST_BATCH_SIZE  (default 500) [records]");
    expect(help).toContain("TEST_PASSWORD or TEST_PASSWORD_FILE");
  });
});
