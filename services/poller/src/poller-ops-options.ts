import {
  parseBoolean,
  parseHostPort,
  parseInteger,
  parseNonEmptyString,
  type OptionSpec,
} from "@vulnsub/shared";

/**
 * Options of the operations surface: metrics and health endpoints, TLS to
 * the flusher, and the vendor HTTP trust store and proxy. Unset paths are
 * null; every listener defaults to loopback.
 */
export const pollerOpsOptionSpecs = {
  metricsListen: spec<string | null>({
    key: "metricsListen",
    env: "METRICS_LISTEN",
    flag: "metrics-listen",
    default: "127.0.0.1:0",
    description: 'host:port of /metrics and /healthz; "off" disables them',
    parse: parseListenAddress,
  }),
  healthListen: spec<string | null>({
    key: "healthListen",
    env: "HEALTH_LISTEN",
    flag: "health-listen",
    default: "127.0.0.1:0",
    description:
      'host:port of the gRPC health service (plaintext); "off" disables it',
    parse: parseListenAddress,
  }),
  healthStaleFactor: spec({
    key: "healthStaleFactor",
    env: "HEALTH_STALE_FACTOR",
    flag: "health-stale-factor",
    default: 3,
    unit: "poll intervals",
    description: "health fails when no cycle completed for this long",
    parse: parseInteger(1, 1000),
  }),
  flusherTls: spec({
    key: "flusherTls",
    env: "FLUSHER_TLS",
    flag: "flusher-tls",
    default: false,
    description:
      "connect to the flusher over TLS; implied by any FLUSHER_TLS_* file",
    parse: parseBoolean,
  }),
  flusherTlsCaFile: spec<string | null>({
    key: "flusherTlsCaFile",
    env: "FLUSHER_TLS_CA_FILE",
    flag: "flusher-tls-ca-file",
    // Null trusts the public roots bundled with the runtime.
    default: null,
    description: "PEM CA bundle that signed the flusher's certificate",
    parse: parseNonEmptyString,
  }),
  flusherTlsCertFile: spec<string | null>({
    key: "flusherTlsCertFile",
    env: "FLUSHER_TLS_CERT_FILE",
    flag: "flusher-tls-cert-file",
    default: null,
    description: "PEM client certificate for mutual TLS",
    parse: parseNonEmptyString,
  }),
  flusherTlsKeyFile: spec<string | null>({
    key: "flusherTlsKeyFile",
    env: "FLUSHER_TLS_KEY_FILE",
    flag: "flusher-tls-key-file",
    default: null,
    description: "PEM private key of FLUSHER_TLS_CERT_FILE",
    parse: parseNonEmptyString,
  }),
  flusherTlsServerName: spec<string | null>({
    key: "flusherTlsServerName",
    env: "FLUSHER_TLS_SERVER_NAME",
    flag: "flusher-tls-server-name",
    // Null checks the certificate against the host of FLUSHER_ADDRESS.
    default: null,
    description: "name the flusher's certificate must carry, if not its host",
    parse: parseNonEmptyString,
  }),
  vendorCaFile: spec<string | null>({
    key: "vendorCaFile",
    env: "VENDOR_CA_FILE",
    flag: "vendor-ca-file",
    default: null,
    description:
      "PEM CA bundle trusted for vendor HTTPS, in addition to public roots",
    parse: parseNonEmptyString,
  }),
  httpsProxy: spec<string | null>({
    key: "httpsProxy",
    env: "HTTPS_PROXY",
    flag: "https-proxy",
    default: null,
    description: "proxy URL for https:// vendor requests (also https_proxy)",
    parse: parseProxyUrl,
  }),
  httpProxy: spec<string | null>({
    key: "httpProxy",
    env: "HTTP_PROXY",
    flag: "http-proxy",
    default: null,
    description: "proxy URL for http:// vendor requests (also http_proxy)",
    parse: parseProxyUrl,
  }),
  noProxy: spec({
    key: "noProxy",
    env: "NO_PROXY",
    flag: "no-proxy",
    default: "",
    description:
      "hosts reached without the proxy: a,b.example,.example,host:port,*",
    parse: (raw: unknown) => String(raw).trim(),
  }),
};

/**
 * Lower-case proxy variables, as curl and most tools accept them, filled
 * in where the upper-case one is unset.
 */
export function withProxyAliases(
  env: Readonly<Record<string, string | undefined>>,
): Readonly<Record<string, string | undefined>> {
  const result = { ...env };
  for (const name of ["HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"]) {
    const lower = env[name.toLowerCase()];
    if (!result[name] && lower) result[name] = lower;
  }
  return result;
}

function spec<T>(option: OptionSpec<T>): OptionSpec<T> {
  return option;
}

function parseListenAddress(raw: unknown): string | null {
  if (raw === "off") return null;
  parseHostPort(raw);
  return parseNonEmptyString(raw);
}

// An empty proxy variable means no proxy, as in curl.
function parseProxyUrl(raw: unknown): string | null {
  const text = String(raw).trim();
  if (text === "") return null;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error("expected a URL such as http://proxy.example:3128");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error("expected an http:// or https:// proxy URL");
  }
  return text;
}
