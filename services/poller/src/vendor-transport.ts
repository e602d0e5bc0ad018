import { readFileSync } from "node:fs";
import { BlockList, isIP } from "node:net";
import { rootCertificates } from "node:tls";
import { ConfigError } from "@vulnsub/shared";
import { describeUrl } from "./vendor-http-body.ts";

/** The poller settings that shape vendor HTTP connections. */
export interface VendorTransportSettings {
  readonly vendorCaFile: string | null;
  readonly httpsProxy: string | null;
  readonly httpProxy: string | null;
  readonly noProxy: string;
}

/** Bun fetch options for one vendor request. */
export interface VendorFetchOptions {
  /** `false` connects directly, ignoring proxy environment variables. */
  proxy: false | { url: string; respectNoProxy: false };
  tls?: { ca: string[] };
}

/**
 * Connection settings of vendor requests. They go through HTTPS_PROXY
 * (https URLs) or HTTP_PROXY (http URLs) unless NO_PROXY names the host,
 * and trust VENDOR_CA_FILE on top of the public roots. The decision is
 * made here and passed to every fetch, so Bun's own reading of the proxy
 * variables never applies a second, different rule.
 */
export interface VendorTransport {
  fetchOptions(url: string): VendorFetchOptions;
  /** Settings for the poller.started line; proxy credentials removed. */
  describe(): Record<string, unknown>;
}

export function createVendorTransport(
  settings: VendorTransportSettings,
): VendorTransport {
  const ca = settings.vendorCaFile ? readVendorCa(settings.vendorCaFile) : null;
  // Node and Bun replace the default roots when `ca` is given, so the
  // public roots are kept next to the extra bundle.
  const tls = ca ? { ca: [...rootCertificates, ca] } : undefined;
  const bypass = parseNoProxy(settings.noProxy);

  return {
    fetchOptions(url) {
      const proxy = proxyFor(new URL(url), settings, bypass);
      const options: VendorFetchOptions = {
        proxy: proxy ? { url: proxy, respectNoProxy: false } : false,
      };
      if (tls) options.tls = tls;
      return options;
    },
    describe: () => ({
      httpsProxy: settings.httpsProxy ? describeUrl(settings.httpsProxy) : null,
      httpProxy: settings.httpProxy ? describeUrl(settings.httpProxy) : null,
      noProxy: settings.noProxy,
      vendorCaFile: settings.vendorCaFile,
    }),
  };
}

/**
 * Reads a PEM CA bundle and returns its text. Throws ConfigError naming
 * VENDOR_CA_FILE when the file is unreadable or contains no certificate.
 */
export function readVendorCa(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError([`VENDOR_CA_FILE ${path}: cannot read: ${reason}`]);
  }
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw new ConfigError([
      `VENDOR_CA_FILE ${path}: expected PEM certificates ` +
        "(-----BEGIN CERTIFICATE-----)",
    ]);
  }
  return text;
}

/**
 * A parsed NO_PROXY list, with entries separated by commas or spaces.
 * - `*` matches every host.
 * - `example.com` and `.example.com` match the domain and its subdomains.
 * - `host:port` matches that port only.
 * - An IP address matches itself, and `10.0.0.0/8` or `fd00::/8` a network.
 */
export interface NoProxyList {
  matches(url: URL): boolean;
}

export function parseNoProxy(text: string): NoProxyList {
  const entries = text
    .split(/[\s,]+/)
    .map((entry) => entry.trim().toLowerCase())
    .filter(Boolean);
  const everything = entries.includes("*");
  const networks = new BlockList();
  const names: { host: string; port: string | null }[] = [];

  for (const entry of entries) {
    const network = /^([0-9a-f:.]+)\/(\d{1,3})$/.exec(entry);
    if (network && isIP(network[1] as string) !== 0) {
      const address = network[1] as string;
      const family = isIP(address) === 4 ? "ipv4" : "ipv6";
      networks.addSubnet(address, Number(network[2]), family);
      continue;
    }
    names.push(splitHostPort(entry));
  }

  return {
    matches(url) {
      if (everything) return true;
      const host = stripBrackets(url.hostname.toLowerCase());
      const port = url.port || (url.protocol === "https:" ? "443" : "80");
      const family = isIP(host);
      const type = family === 4 ? "ipv4" : "ipv6";
      if (family !== 0 && networks.check(host, type)) return true;
      return names.some(
        (name) =>
          (name.port === null || name.port === port) &&
          (host === name.host || host.endsWith(`.${name.host}`)),
      );
    },
  };
}

function proxyFor(
  url: URL,
  settings: VendorTransportSettings,
  bypass: NoProxyList,
): string | null {
  const proxy =
    url.protocol === "https:" ? settings.httpsProxy : settings.httpProxy;
  if (!proxy || bypass.matches(url)) return null;
  return proxy;
}

function splitHostPort(entry: string): { host: string; port: string | null } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed) {
    return { host: bracketed[1] as string, port: bracketed[2] ?? null };
  }
  // A bare IPv6 address has several colons and no port.
  if (isIP(entry) === 6) return { host: entry, port: null };
  const match = /^(.*?)(?::(\d+))?$/.exec(entry);
  const host = (match?.[1] ?? entry).replace(/^\*?\./, "");
  return { host, port: match?.[2] ?? null };
}

function stripBrackets(host: string): string {
  return host.startsWith("[") ? host.slice(1, -1) : host;
}
