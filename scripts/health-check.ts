// Checks a vulnsub gRPC health endpoint without grpcurl:
//
//   bun scripts/health-check.ts ADDRESS [SERVICE] [--tls-ca FILE]
//     [--tls-cert FILE --tls-key FILE] [--server-name NAME]
//     [--deadline-ms N]
//
// ADDRESS is host:port: the flusher's FLUSHER_LISTEN, or the address a
// poller logs as healthAddress in poller.started. SERVICE defaults to ""
// (the whole process). Prints the status and exits 0 for SERVING, 1 for
// any other status or a failed call, 2 for bad arguments. Any --tls-*
// option switches to TLS; the flusher needs the client certificate when it
// runs with TLS_CLIENT_CA_FILE.
import {
  checkHealth,
  createClientTls,
  parseHostPort,
  type ClientTls,
  type ClientTlsFiles,
} from "@vulnsub/shared";

const USAGE =
  "usage: bun scripts/health-check.ts ADDRESS [SERVICE] [--tls-ca FILE] " +
  "[--tls-cert FILE --tls-key FILE] [--server-name NAME] [--deadline-ms N]";

interface Arguments {
  address: string;
  service: string;
  tls: ClientTlsFiles;
  deadlineMs: number;
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));

async function main(argv: string[]): Promise<number> {
  let args: Arguments;
  let tls: ClientTls | null;
  try {
    args = parseArguments(argv);
    const useTls = !!(args.tls.ca || args.tls.cert || args.tls.serverName);
    tls = useTls ? createClientTls(args.address, args.tls) : null;
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }

  const label = `${args.address} service ${JSON.stringify(args.service)}`;
  try {
    const status = await checkHealth(args.address, args.service, {
      credentials: tls?.credentials,
      channelOptions: tls?.channelOptions,
      deadlineMs: args.deadlineMs,
    });
    process.stdout.write(`${label}: ${status}\n`);
    return status === "SERVING" ? 0 : 1;
  } catch (error) {
    const details = (error as { details?: string }).details;
    process.stdout.write(
      `${label}: check failed: ${details || (error as Error).message}\n`,
    );
    return 1;
  }
}

function parseArguments(argv: string[]): Arguments {
  const positionals: string[] = [];
  const values = new Map<string, string>();
  const known = [
    "--tls-ca",
    "--tls-cert",
    "--tls-key",
    "--server-name",
    "--deadline-ms",
  ];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith("--")) {
      positionals.push(arg);
      continue;
    }
    const value = argv[i + 1];
    if (!known.includes(arg) || value === undefined) {
      throw new Error(`${arg}: unknown option or missing value`);
    }
    values.set(arg, value);
    i++;
  }

  const [address, service = "", extra] = positionals;
  if (!address || extra !== undefined) {
    throw new Error("expected ADDRESS and at most one SERVICE");
  }
  parseHostPort(address);
  const deadlineMs = Number(values.get("--deadline-ms") ?? "5000");
  if (!Number.isInteger(deadlineMs) || deadlineMs < 1) {
    throw new Error("--deadline-ms: expected a positive integer");
  }
  const file = (flag: string) => {
    const path = values.get(flag);
    return path ? { path, option: flag } : null;
  };
  return {
    address,
    service,
    deadlineMs,
    tls: {
      ca: file("--tls-ca"),
      cert: file("--tls-cert"),
      key: file("--tls-key"),
      serverName: values.get("--server-name") ?? null,
    },
  };
}
