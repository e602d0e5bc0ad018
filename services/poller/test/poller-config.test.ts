import { describe, expect, test } from "bun:test";
import { ConfigError } from "@vulnsub/shared";
import { vendorRegistry } from "../src/adapters/index.ts";
import { formatPollerHelp, loadPollerConfig } from "../src/config.ts";

const rapid7 = ["--vendor", "rapid7"];

function issuesOf(run: () => unknown): readonly string[] {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("loadPollerConfig", () => {
  test("cycle retry defaults", () => {
    const { config } = loadPollerConfig(vendorRegistry, rapid7, {
      RAPID7_API_KEY: "key",
    });

    expect(config?.cycleRetryBaseMs).toBe(1_000);
    expect(config?.cycleRetryMaxMs).toBe(60_000);
  });

  test("cycle retry from the environment", () => {
    const { config } = loadPollerConfig(vendorRegistry, rapid7, {
      RAPID7_API_KEY: "key",
      CYCLE_RETRY_BASE_MS: "50",
      CYCLE_RETRY_MAX_MS: "500",
    });

    expect(config?.cycleRetryBaseMs).toBe(50);
    expect(config?.cycleRetryMaxMs).toBe(500);
  });

  test("cycle retry max below base is rejected", () => {
    const issues = issuesOf(() =>
      loadPollerConfig(vendorRegistry, rapid7, {
        RAPID7_API_KEY: "key",
        CYCLE_RETRY_BASE_MS: "5000",
        CYCLE_RETRY_MAX_MS: "1000",
      }),
    );

    expect(issues.length).toBe(1);
    expect(issues[0]).toContain("CYCLE_RETRY_MAX_MS");
  });

  test("empty secret is reported once", () => {
    const issues = issuesOf(() =>
      loadPollerConfig(vendorRegistry, rapid7, { RAPID7_API_KEY: "" }),
    );

    expect(issues.length).toBe(1);
    expect(issues[0]).toContain("expected a non-empty string");
    expect(issues.join("\n")).not.toContain("missing");
  });

  test("secret unset is missing", () => {
    const issues = issuesOf(() =>
      loadPollerConfig(vendorRegistry, rapid7, {}),
    );

    expect(issues).toEqual([
      "rapid7ApiKey (RAPID7_API_KEY or RAPID7_API_KEY_FILE): missing",
    ]);
  });

  test("secret and its _FILE both set", () => {
    const issues = issuesOf(() =>
      loadPollerConfig(vendorRegistry, rapid7, {
        RAPID7_API_KEY: "key-from-env",
        RAPID7_API_KEY_FILE: "/nonexistent/key",
      }),
    );

    expect(issues.length).toBe(1);
    expect(issues[0]).toContain(
      "set either RAPID7_API_KEY or RAPID7_API_KEY_FILE, not both",
    );
    expect(issues[0]).not.toContain("key-from-env");
  });
});

describe("formatPollerHelp", () => {
  test("lists the cycle retry options", () => {
    const help = formatPollerHelp(vendorRegistry);

    expect(help).toContain("--cycle-retry-base-ms  CYCLE_RETRY_BASE_MS");
    expect(help).toContain("--cycle-retry-max-ms  CYCLE_RETRY_MAX_MS");
  });
});
