import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { checkServerIdentity, type PeerCertificate } from "node:tls";
import {
  credentials,
  ServerCredentials,
  type ChannelCredentials,
  type ChannelOptions,
} from "@grpc/grpc-js";
import { parseHostPort } from "./config.ts";
import { ConfigError } from "./errors.ts";

/**
 * TLS for the gRPC link between pollers and the flusher. Every file is
 * PEM. Errors name the file and the environment variable that set it, and
 * never include file contents, so no key reaches a log line.
 */

/** A PEM file and the option that named it, for error messages. */
export interface TlsFile {
  path: string;
  /** Environment variable or flag that set `path`, e.g. TLS_CERT_FILE. */
  option: string;
}

/** Server side: certificate and key, and optionally a client CA. */
export interface ServerTlsFiles {
  cert: TlsFile | null;
  key: TlsFile | null;
  /** CA bundle for client certificates; when set, clients must present one. */
  clientCa: TlsFile | null;
}

/** Client side: trusted CA, client certificate for mutual TLS, name. */
export interface ClientTlsFiles {
  /** Trusted CA bundle; null trusts the bundled public roots. */
  ca: TlsFile | null;
  cert: TlsFile | null;
  key: TlsFile | null;
  /** Name checked against the server certificate instead of the host. */
  serverName: string | null;
}

export interface ClientTls {
  credentials: ChannelCredentials;
  channelOptions: ChannelOptions;
}

/**
 * Builds the server credentials: plaintext when neither certificate nor
 * key is set, TLS with both, and mutual TLS (client certificates required
 * and verified) when a client CA is set too. Throws ConfigError for an
 * incomplete set or an unreadable file.
 */
export function createServerCredentials(
  files: ServerTlsFiles,
): ServerCredentials {
  if (!files.cert && !files.key) {
    if (files.clientCa) {
      throw new ConfigError([
        `${files.clientCa.option}: needs a server certificate and key too`,
      ]);
    }
    return ServerCredentials.createInsecure();
  }
  requirePair(files.cert, files.key);

  const certChain = readPem(files.cert as TlsFile);
  const privateKey = readPem(files.key as TlsFile);
  const clientCa = files.clientCa ? readPem(files.clientCa) : null;
  return ServerCredentials.createSsl(
    clientCa,
    [{ cert_chain: certChain, private_key: privateKey }],
    clientCa !== null,
  );
}

/** True when any client TLS setting is given. */
export function hasClientTls(files: ClientTlsFiles): boolean {
  return !!(files.ca || files.cert || files.key || files.serverName);
}

/**
 * Builds the channel credentials for `address` (host:port). The server
 * certificate must name the host of `address` (a DNS name, or an IP
 * address in its subjectAltName) unless `serverName` overrides it.
 */
export function createClientTls(
  address: string,
  files: ClientTlsFiles,
): ClientTls {
  requirePair(files.cert, files.key);
  const ca = files.ca ? readPem(files.ca) : null;
  const cert = files.cert ? readPem(files.cert) : null;
  const key = files.key ? readPem(files.key) : null;

  if (files.serverName) {
    return {
      credentials: credentials.createSsl(ca, key, cert),
      channelOptions: { "grpc.ssl_target_name_override": files.serverName },
    };
  }

  const { host } = parseHostPort(address);
  if (isIP(host) === 0) {
    return {
      credentials: credentials.createSsl(ca, key, cert),
      channelOptions: {},
    };
  }

  // grpc-js 1.14 sends the target host as the TLS server name (SNI), and
  // Bun 1.4 rejects an IP address there. So an IP target gets a
  // placeholder server name, and the certificate is checked against the IP.
  const checkIp = (_name: string, peer: PeerCertificate) =>
    checkServerIdentity(host, peer);
  return {
    credentials: credentials.createSsl(ca, key, cert, {
      checkServerIdentity: checkIp,
    }),
    channelOptions: { "grpc.ssl_target_name_override": IP_PLACEHOLDER_NAME },
  };
}

/** Server name sent for IP targets; never matched against a certificate. */
const IP_PLACEHOLDER_NAME = "flusher.vulnsub.invalid";

function requirePair(cert: TlsFile | null, key: TlsFile | null): void {
  if (cert && !key) {
    throw new ConfigError([`${cert.option}: needs the matching key file`]);
  }
  if (key && !cert) {
    throw new ConfigError([`${key.option}: needs the matching certificate`]);
  }
}

function readPem(file: TlsFile): Buffer {
  let content: Buffer;
  try {
    content = readFileSync(file.path);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError([
      `${file.option} ${file.path}: cannot read: ${reason}`,
    ]);
  }
  if (!content.includes("-----BEGIN ")) {
    throw new ConfigError([
      `${file.option} ${file.path}: expected a PEM file (-----BEGIN ...)`,
    ]);
  }
  return content;
}
