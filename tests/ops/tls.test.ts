// TLS and mutual TLS on the gRPC link between a real poller and a real
// flusher, with a test PKI made by openssl in a temp folder.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkHealth, createClientTls, type ClientTlsFiles } from "@vulnsub/shared";
import {
  SIMULATOR_CREDENTIALS,
  startSimulator,
  type SimulatorHandle,
} from "@vulnsub/simulators";
import {
  createTestCertificates,
  createWorkspace,
  eventsOf,
  isEvent,
  REPO_DIR,
  spawnPollerProcess,
  spawnWithOutput,
  startFlusher,
  FLUSHER_MAIN,
  type TestCertificates,
  type Workspace,
} from "./helpers.ts";

const TEST_TIMEOUT_MS = 120_000;

let certDir: string;
let certs: TestCertificates;
let workspace: Workspace;
let simulator: SimulatorHandle;

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

async function startWorld() {
  workspace = createWorkspace();
  simulator = await startSimulator("rapid7", {
    seed: 3,
    assets: 8,
    findingsPerAsset: 2,
    rateLimit: { requests: 1000, windowMs: 1000 },
  });
  workspace.defer(() => simulator.stop());
}

function pollerEnv(flusherAddress: string, env: Record<string, string>) {
  return {
    VENDOR: "rapid7",
    RAPID7_BASE_URL: simulator.url,
    ...SIMULATOR_CREDENTIALS.rapid7,
    FLUSHER_ADDRESS: flusherAddress,
    ONCE: "true",
    ...env,
  };
}

function tlsFiles(files: Partial<ClientTlsFiles>): ClientTlsFiles {
  return { ca: null, cert: null, key: null, serverName: null, ...files };
}

const file = (path: string) => ({ path, option: "test" });

function logLines(): number {
  const text = readFileSync(
    join(workspace.dir, "data", "vulnerabilities.jsonl"),
    "utf8",
  );
  return text.split("\n").filter(Boolean).length;
}

describe("flusher TLS", () => {
  test(
    "TLS stream delivers a sync",
    async () => {
      await startWorld();
      const flusher = await startFlusher(workspace, {
        TLS_CERT_FILE: certs.serverCert,
        TLS_KEY_FILE: certs.serverKey,
      });
      const poller = spawnPollerProcess(
        workspace,
        pollerEnv(flusher.address, { FLUSHER_TLS_CA_FILE: certs.caCert }),
      );

      const exit = await poller.process.exited;
      const trusted = await checkHealth(flusher.address, "", {
        ...createClientTls(flusher.address, tlsFiles({ ca: file(certs.caCert) })),
      });
      const plaintext = await checkHealth(flusher.address, "", {
        deadlineMs: 2_000,
      }).catch((error: { code?: number }) => error.code);

      expect(exit.code).toBe(0);
      const started = eventsOf(poller.process, "poller.started")[0];
      expect(started?.flusherTls).toBe("tls");
      const listening = eventsOf(flusher.process, "flusher.listening")[0];
      expect(listening?.tls).toBe("tls");
      const completed = eventsOf(poller.process, "cycle.completed").filter(
        (event) => event.area === undefined,
      );
      expect(Number(completed[0]?.written)).toBeGreaterThan(0);
      expect(logLines()).toBe(Number(completed[0]?.written));
      expect(trusted).toBe("SERVING");
      expect(plaintext).toBe(14);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "server name override checks that name",
    async () => {
      await startWorld();
      const flusher = await startFlusher(workspace, {
        TLS_CERT_FILE: certs.serverCert,
        TLS_KEY_FILE: certs.serverKey,
      });
      const connect = (serverName: string) =>
        checkHealth(flusher.address, "", {
          deadlineMs: 2_000,
          ...createClientTls(
            flusher.address,
            tlsFiles({ ca: file(certs.caCert), serverName }),
          ),
        }).catch((error: { code?: number }) => error.code);

      const matching = await connect("localhost");
      const wrong = await connect("flusher.example.invalid");

      expect(matching).toBe("SERVING");
      expect(wrong).toBe(14);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "mutual TLS stream delivers a sync",
    async () => {
      await startWorld();
      const flusher = await startFlusher(workspace, {
        TLS_CERT_FILE: certs.serverCert,
        TLS_KEY_FILE: certs.serverKey,
        TLS_CLIENT_CA_FILE: certs.caCert,
      });
      const poller = spawnPollerProcess(
        workspace,
        pollerEnv(flusher.address, {
          FLUSHER_TLS_CA_FILE: certs.caCert,
          FLUSHER_TLS_CERT_FILE: certs.clientCert,
          FLUSHER_TLS_KEY_FILE: certs.clientKey,
          FLUSHER_TLS_SERVER_NAME: "localhost",
        }),
      );

      const exit = await poller.process.exited;

      expect(exit.code).toBe(0);
      const started = eventsOf(poller.process, "poller.started")[0];
      expect(started?.flusherTls).toBe("mutual-tls");
      const listening = eventsOf(flusher.process, "flusher.listening")[0];
      expect(listening?.tls).toBe("mutual-tls");
      expect(logLines()).toBeGreaterThan(0);
      expect(poller.output()).not.toContain("PRIVATE KEY");
      expect(flusher.output()).not.toContain("PRIVATE KEY");
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "mutual TLS rejects pollers without a trusted certificate",
    async () => {
      await startWorld();
      const flusher = await startFlusher(workspace, {
        TLS_CERT_FILE: certs.serverCert,
        TLS_KEY_FILE: certs.serverKey,
        TLS_CLIENT_CA_FILE: certs.caCert,
      });
      const withoutCert = spawnPollerProcess(
        workspace,
        pollerEnv(flusher.address, { FLUSHER_TLS_CA_FILE: certs.caCert }),
      );
      const rogue = spawnPollerProcess(
        workspace,
        pollerEnv(flusher.address, {
          FLUSHER_TLS_CA_FILE: certs.caCert,
          FLUSHER_TLS_CERT_FILE: certs.rogueCert,
          FLUSHER_TLS_KEY_FILE: certs.rogueKey,
          // Another source, so this poller does not wait for the job lock
          // the first one holds.
          SOURCE: "rogue",
        }),
      );

      const refused = await withoutCert.process.waitForEvent(
        isEvent("flusher.unavailable"),
        30_000,
      );
      const rogueRefused = await rogue.process.waitForEvent(
        isEvent("flusher.unavailable"),
        30_000,
      );

      expect(refused.code).toBe("flusher_unavailable");
      expect(rogueRefused.code).toBe("flusher_unavailable");
      expect(eventsOf(withoutCert.process, "flusher.connected").length).toBe(0);
      expect(eventsOf(rogue.process, "flusher.connected").length).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "health-check script speaks mutual TLS",
    async () => {
      await startWorld();
      const flusher = await startFlusher(workspace, {
        TLS_CERT_FILE: certs.serverCert,
        TLS_KEY_FILE: certs.serverKey,
        TLS_CLIENT_CA_FILE: certs.caCert,
      });
      const script = join(REPO_DIR, "scripts/health-check.ts");
      const run = (args: string[]) =>
        Bun.spawn(["bun", script, flusher.address, ...args], {
          stdout: "pipe",
          stderr: "pipe",
        });

      const good = run([
        "vulnsub.v1.Ingest",
        "--tls-ca", certs.caCert,
        "--tls-cert", certs.clientCert,
        "--tls-key", certs.clientKey,
      ]);
      const bad = run(["--tls-ca", certs.caCert, "--deadline-ms", "2000"]);
      const misused = run(["--tls-cert", certs.clientCert]);

      expect(await good.exited).toBe(0);
      expect(await new Response(good.stdout).text()).toContain(": SERVING");
      expect(await bad.exited).toBe(1);
      expect(await new Response(bad.stdout).text()).toContain("check failed");
      expect(await misused.exited).toBe(2);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "incomplete TLS settings are config errors",
    async () => {
      workspace = createWorkspace();
      const flusher = spawnWithOutput({
        name: "flusher",
        command: ["bun", FLUSHER_MAIN],
        env: {
          PATH: process.env.PATH ?? "",
          DATA_DIR: join(workspace.dir, "data"),
          TLS_CERT_FILE: certs.serverCert,
        },
      });
      workspace.defer(() => flusher.child.stop(5_000));
      const poller = spawnPollerProcess(workspace, {
        VENDOR: "rapid7",
        ...SIMULATOR_CREDENTIALS.rapid7,
        FLUSHER_TLS_CA_FILE: join(workspace.dir, "missing.pem"),
      });

      const flusherExit = await flusher.child.exited;
      const pollerExit = await poller.process.exited;

      expect(flusherExit.code).toBe(2);
      expect(flusher.output()).toContain("TLS_CERT_FILE: needs the matching key file");
      expect(pollerExit.code).toBe(2);
      expect(poller.output()).toContain("FLUSHER_TLS_CA_FILE");
      expect(poller.output()).toContain("cannot read");
    },
    TEST_TIMEOUT_MS,
  );
});
