import {
  createClientTls,
  hasClientTls,
  type ClientTls,
  type ClientTlsFiles,
  type TlsFile,
} from "@vulnsub/shared";

/** The poller settings that decide how it secures the flusher link. */
export interface FlusherTlsSettings {
  readonly flusherAddress: string;
  readonly flusherTls: boolean;
  readonly flusherTlsCaFile: string | null;
  readonly flusherTlsCertFile: string | null;
  readonly flusherTlsKeyFile: string | null;
  readonly flusherTlsServerName: string | null;
}

/** Transport security of the flusher link, as logged. */
export type FlusherTlsMode = "plaintext" | "tls" | "mutual-tls";

/**
 * Builds the TLS credentials of the flusher link, or returns null for a
 * plaintext link: TLS is on with FLUSHER_TLS=true or any FLUSHER_TLS_*
 * setting. Throws ConfigError naming the variable for a bad file.
 */
export function createFlusherTls(
  settings: FlusherTlsSettings,
): ClientTls | null {
  const files = tlsFilesOf(settings);
  if (!settings.flusherTls && !hasClientTls(files)) return null;
  return createClientTls(settings.flusherAddress, files);
}

export function flusherTlsMode(settings: FlusherTlsSettings): FlusherTlsMode {
  if (!settings.flusherTls && !hasClientTls(tlsFilesOf(settings))) {
    return "plaintext";
  }
  return settings.flusherTlsCertFile ? "mutual-tls" : "tls";
}

function tlsFilesOf(settings: FlusherTlsSettings): ClientTlsFiles {
  const file = (path: string | null, option: string): TlsFile | null =>
    path ? { path, option } : null;
  return {
    ca: file(settings.flusherTlsCaFile, "FLUSHER_TLS_CA_FILE"),
    cert: file(settings.flusherTlsCertFile, "FLUSHER_TLS_CERT_FILE"),
    key: file(settings.flusherTlsKeyFile, "FLUSHER_TLS_KEY_FILE"),
    serverName: settings.flusherTlsServerName,
  };
}
