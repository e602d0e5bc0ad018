import {
  createServerCredentials,
  type ServerTlsFiles,
  type TlsFile,
} from "@vulnsub/shared";
import type { ServerCredentials } from "@grpc/grpc-js";

/** The TLS settings of the flusher config; empty strings mean unset. */
export interface FlusherTlsSettings {
  readonly tlsCertFile: string;
  readonly tlsKeyFile: string;
  readonly tlsClientCaFile: string;
}

/** Transport security of the gRPC server, as logged and documented. */
export type FlusherTlsMode = "plaintext" | "tls" | "mutual-tls";

/**
 * Builds the gRPC server credentials: plaintext without TLS_CERT_FILE,
 * TLS with it, mutual TLS when TLS_CLIENT_CA_FILE is set too. Throws
 * ConfigError naming the variable for a missing or unreadable file.
 */
export function createFlusherCredentials(
  settings: FlusherTlsSettings,
): ServerCredentials {
  return createServerCredentials(tlsFilesOf(settings));
}

export function flusherTlsMode(settings: FlusherTlsSettings): FlusherTlsMode {
  if (!settings.tlsCertFile) return "plaintext";
  return settings.tlsClientCaFile ? "mutual-tls" : "tls";
}

function tlsFilesOf(settings: FlusherTlsSettings): ServerTlsFiles {
  const file = (path: string, option: string): TlsFile | null =>
    path ? { path, option } : null;
  return {
    cert: file(settings.tlsCertFile, "TLS_CERT_FILE"),
    key: file(settings.tlsKeyFile, "TLS_KEY_FILE"),
    clientCa: file(settings.tlsClientCaFile, "TLS_CLIENT_CA_FILE"),
  };
}
