// `--help` of both services lists every option with its flag, environment
// variable, default and unit, and the logging variables.
import { describe, expect, test } from "bun:test";
import type { OptionSpecs } from "@vulnsub/shared";
import { flusherOptions } from "../../services/flusher/src/config.ts";
import { pollerOptionSpecs } from "../../services/poller/src/config.ts";
import { FLUSHER_MAIN, POLLER_MAIN } from "./helpers.ts";

async function helpOf(main: string): Promise<{ code: number; text: string }> {
  const child = Bun.spawn(["bun", main, "--help"], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const text = await new Response(child.stdout).text();
  return { code: await child.exited, text };
}

function expectEveryOption(text: string, specs: OptionSpecs) {
  for (const spec of Object.values(specs)) {
    const flag = spec.flag ? `--${spec.flag}  ${spec.env}` : spec.env;
    expect(text).toContain(flag);
    const line = text.split("\n").find((row) => row.includes(flag)) ?? "";
    expect(line).toMatch(/\((default .+|required|unset)\)/);
    if (spec.unit) expect(line).toContain(`[${spec.unit}]`);
    expect(text).toContain(`${spec.key}: ${spec.description}`);
  }
}

const LOG_VARIABLES = ["LOG_LEVEL", "LOG_FORMAT", "LOG_DEBUG"];

describe("--help", () => {
  test("poller lists every option", async () => {
    const { code, text } = await helpOf(POLLER_MAIN);

    expect(code).toBe(0);
    expectEveryOption(text, pollerOptionSpecs);
    for (const name of [
      "HEALTH_LISTEN",
      "HEALTH_STALE_FACTOR",
      "METRICS_LISTEN",
      "FLUSHER_TLS_CA_FILE",
      "FLUSHER_TLS_CERT_FILE",
      "FLUSHER_TLS_KEY_FILE",
      "FLUSHER_TLS_SERVER_NAME",
      "VENDOR_CA_FILE",
      "HTTPS_PROXY",
      "NO_PROXY",
      "SHUTDOWN_GRACE_MS",
      ...LOG_VARIABLES,
    ]) {
      expect(text).toContain(name);
    }
  });

  test("flusher lists every option", async () => {
    const { code, text } = await helpOf(FLUSHER_MAIN);

    expect(code).toBe(0);
    expectEveryOption(text, flusherOptions as unknown as OptionSpecs);
    for (const name of [
      "TLS_CERT_FILE",
      "TLS_KEY_FILE",
      "TLS_CLIENT_CA_FILE",
      ...LOG_VARIABLES,
    ]) {
      expect(text).toContain(name);
    }
  });
});
