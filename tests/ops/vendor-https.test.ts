// Vendor HTTPS through a custom CA bundle and an HTTP CONNECT proxy: a
// Bun.serve HTTPS front with a test certificate forwards to the Rapid7
// simulator, and a small CONNECT proxy records the tunnels it opens.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createConnection, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SIMULATOR_CREDENTIALS, startSimulator } from "@vulnsub/simulators";
import {
  createTestCertificates,
  createWorkspace,
  eventsOf,
  isEvent,
  spawnPollerProcess,
  startFlusher,
  type TestCertificates,
  type Workspace,
} from "./helpers.ts";

const TEST_TIMEOUT_MS = 120_000;

let certDir: string;
let certs: TestCertificates;
let workspace: Workspace;

beforeAll(() => {
  certDir = mkdtempSync(join(tmpdir(), "vulnsub-pki-"));
  certs = createTestCertificates(certDir);
});

afterAll(() => {
  rmSync(certDir, { recursive: true, force: true });
});

afterEach(async () => {
  await workspace.cleanup();
});

/** Starts the Rapid7 simulator behind an HTTPS front with the test certificate. */
async function startHttpsVendor() {
  const simulator = await startSimulator("rapid7", {
    seed: 9,
    assets: 8,
    findingsPerAsset: 2,
    rateLimit: { requests: 1000, windowMs: 1000 },
  });
  workspace.defer(() => simulator.stop());
  const front = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: {
      cert: readFileSync(certs.serverCert, "utf8"),
      key: readFileSync(certs.serverKey, "utf8"),
    },
    fetch: async (request) => {
      const url = new URL(request.url);
      const body = request.body ? await request.arrayBuffer() : undefined;
      return fetch(`${simulator.url}${url.pathname}${url.search}`, {
        method: request.method,
        headers: request.headers,
        body,
        proxy: false,
      });
    },
  });
  workspace.defer(() => front.stop(true));
  return `https://127.0.0.1:${front.port}`;
}

/** Starts an HTTP CONNECT proxy on loopback that records each tunnel. */
async function startConnectProxy() {
  const tunnels: { target: string; authorization: string | null }[] = [];
  const server: Server = createServer((client) => {
    client.once("data", (head) => {
      const text = head.toString("latin1");
      const target = /^CONNECT (\S+) HTTP/.exec(text)?.[1];
      if (!target) {
        client.end("HTTP/1.1 405 Method Not Allowed\r\n\r\n");
        return;
      }
      const authorization =
        /\r\nproxy-authorization: ([^\r]+)/i.exec(text)?.[1] ?? null;
      tunnels.push({ target, authorization });
      const [host, port] = target.split(":");
      const upstream = createConnection(Number(port), host, () => {
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        upstream.pipe(client);
        client.pipe(upstream);
      });
      upstream.on("error", () => client.destroy());
      client.on("error", () => upstream.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  workspace.defer(() => new Promise((resolve) => server.close(resolve)));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return { port, tunnels };
}

async function startWorld() {
  workspace = createWorkspace();
  const vendorUrl = await startHttpsVendor();
  const flusher = await startFlusher(workspace);
  const env = (extra: Record<string, string>) => ({
    VENDOR: "rapid7",
    RAPID7_BASE_URL: vendorUrl,
    ...SIMULATOR_CREDENTIALS.rapid7,
    FLUSHER_ADDRESS: flusher.address,
    REQUEST_MAX_ATTEMPTS: "1",
    ...extra,
  });
  return { vendorUrl, env };
}

describe("vendor HTTPS", () => {
  test(
    "test CA is trusted only with VENDOR_CA_FILE",
    async () => {
      const { env } = await startWorld();
      const untrusted = spawnPollerProcess(workspace, env({}));
      const failed = await untrusted.process.waitForEvent(
        isEvent("cycle.failed"),
        30_000,
      );
      await untrusted.process.stop(5_000);

      const trusted = spawnPollerProcess(
        workspace,
        env({ VENDOR_CA_FILE: certs.caCert, ONCE: "true" }),
      );
      const exit = await trusted.process.exited;

      expect(failed.code).toBe("vendor_request_failed");
      expect(JSON.stringify(failed.err)).toMatch(/certificate/i);
      expect(exit.code).toBe(0);
      const started = eventsOf(trusted.process, "poller.started")[0];
      expect(started?.vendorCaFile).toBe(certs.caCert);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "HTTPS_PROXY carries vendor requests",
    async () => {
      const { vendorUrl, env } = await startWorld();
      const proxy = await startConnectProxy();
      const poller = spawnPollerProcess(
        workspace,
        env({
          VENDOR_CA_FILE: certs.caCert,
          HTTPS_PROXY: `http://ops:proxy-secret@127.0.0.1:${proxy.port}`,
          ONCE: "true",
        }),
      );

      const exit = await poller.process.exited;

      expect(exit.code).toBe(0);
      const vendorHost = new URL(vendorUrl).host;
      expect(proxy.tunnels.length).toBeGreaterThan(0);
      expect(proxy.tunnels.every((t) => t.target === vendorHost)).toBe(true);
      expect(proxy.tunnels[0]?.authorization).toBe(
        `Basic ${btoa("ops:proxy-secret")}`,
      );
      const started = eventsOf(poller.process, "poller.started")[0];
      expect(String(started?.httpsProxy)).toContain(`127.0.0.1:${proxy.port}`);
      expect(poller.output()).not.toContain("proxy-secret");
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "NO_PROXY host bypasses the proxy",
    async () => {
      const { env } = await startWorld();
      const proxy = await startConnectProxy();
      const poller = spawnPollerProcess(
        workspace,
        env({
          VENDOR_CA_FILE: certs.caCert,
          https_proxy: `http://127.0.0.1:${proxy.port}`,
          no_proxy: "localhost,127.0.0.1",
          ONCE: "true",
        }),
      );

      const exit = await poller.process.exited;

      expect(exit.code).toBe(0);
      expect(proxy.tunnels.length).toBe(0);
      const started = eventsOf(poller.process, "poller.started")[0];
      expect(started?.noProxy).toBe("localhost,127.0.0.1");
    },
    TEST_TIMEOUT_MS,
  );
});
