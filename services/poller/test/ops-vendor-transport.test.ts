import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "@vulnsub/shared";
import { withProxyAliases } from "../src/poller-ops-options.ts";
import {
  createVendorTransport,
  parseNoProxy,
  readVendorCa,
} from "../src/vendor-transport.ts";

describe("parseNoProxy", () => {
  const cases: [string, string, boolean][] = [
    ["", "https://api.example.com/", false],
    ["*", "https://api.example.com/", true],
    ["example.com", "https://example.com/", true],
    ["example.com", "https://api.example.com/", true],
    ["example.com", "https://notexample.com/", false],
    [".example.com", "https://api.example.com/", true],
    ["*.example.com", "https://api.example.com/", true],
    ["API.Example.com", "https://api.example.com/", true],
    ["example.com:8443", "https://example.com:8443/", true],
    ["example.com:8443", "https://example.com/", false],
    ["example.com:443", "https://example.com/", true],
    ["127.0.0.1", "http://127.0.0.1:8080/", true],
    ["127.0.0.0/8", "http://127.9.9.9/", true],
    ["10.0.0.0/8", "http://127.0.0.1/", false],
    ["::1", "http://[::1]:8080/", true],
    ["[::1]:8080", "http://[::1]:8080/", true],
    ["fd00::/8", "http://[fd12::1]/", true],
    ["a.test, b.test  c.test", "https://c.test/", true],
  ];

  for (const [list, url, expected] of cases) {
    test(`${JSON.stringify(list)} on ${url}`, () => {
      expect(parseNoProxy(list).matches(new URL(url))).toBe(expected);
    });
  }
});

describe("createVendorTransport", () => {
  const settings = {
    vendorCaFile: null,
    httpsProxy: "http://user:secret@proxy.test:3128",
    httpProxy: null,
    noProxy: "internal.test",
  };

  test("https URL goes through HTTPS_PROXY", () => {
    const transport = createVendorTransport(settings);

    const options = transport.fetchOptions("https://api.vendor.test/x");

    expect(options.proxy).toEqual({
      url: "http://user:secret@proxy.test:3128",
      respectNoProxy: false,
    });
    expect(options.tls).toBeUndefined();
  });

  test("NO_PROXY host connects directly", () => {
    const transport = createVendorTransport(settings);

    const options = transport.fetchOptions("https://api.internal.test/x");

    expect(options.proxy).toBe(false);
  });

  test("http URL ignores HTTPS_PROXY", () => {
    const transport = createVendorTransport(settings);

    expect(transport.fetchOptions("http://api.vendor.test/").proxy).toBe(false);
  });

  test("describe hides proxy credentials", () => {
    const described = JSON.stringify(createVendorTransport(settings).describe());

    expect(described).not.toContain("secret");
    expect(described).toContain("proxy.test:3128");
  });

  test("CA file adds to the public roots", () => {
    const dir = mkdtempSync(join(tmpdir(), "vulnsub-ca-"));
    const path = join(dir, "ca.pem");
    const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    writeFileSync(path, pem);
    try {
      const transport = createVendorTransport({ ...settings, vendorCaFile: path });

      const ca = transport.fetchOptions("https://api.vendor.test/").tls?.ca ?? [];

      expect(ca.at(-1)).toBe(pem);
      expect(ca.length).toBeGreaterThan(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("readVendorCa", () => {
  test("missing file is a config error", () => {
    expect(() => readVendorCa("/nonexistent/ca.pem")).toThrow(ConfigError);
  });

  test("file without certificates is a config error", () => {
    const dir = mkdtempSync(join(tmpdir(), "vulnsub-ca-"));
    const path = join(dir, "ca.pem");
    writeFileSync(path, "not a certificate\n");
    try {
      expect(() => readVendorCa(path)).toThrow(/expected PEM certificates/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("withProxyAliases", () => {
  test("lower-case variables fill unset upper-case ones", () => {
    const env = withProxyAliases({
      https_proxy: "http://a:1",
      HTTP_PROXY: "http://b:2",
      http_proxy: "http://c:3",
      no_proxy: "x.test",
    });

    expect(env.HTTPS_PROXY).toBe("http://a:1");
    expect(env.HTTP_PROXY).toBe("http://b:2");
    expect(env.NO_PROXY).toBe("x.test");
  });
});
