import type { Random } from "./common.ts";

/**
 * The simulated InsightVM vulnerability catalogue: the definitions served
 * by POST /vm/v4/integration/vulnerabilities, plus what a finding of each
 * vulnerability looks like (port, protocol, proof, solution). Field names
 * and value styles follow the Cloud Integration API v4 responses: severity
 * is critical, severe or moderate, `cves` is one comma-separated string.
 */

export type Rapid7Severity = "critical" | "severe" | "moderate";

export interface SimService {
  port: number;
  protocol: "TCP" | "UDP";
}

export interface SimVulnerability {
  id: string;
  title: string;
  severity: Rapid7Severity;
  riskScore: number;
  /** Retired content: findings still use it, the search never returns it. */
  retired: boolean;
  /** Null for a local (authenticated) check with no port. */
  service: SimService | null;
  /** Whether findings carry a file path in `key`. */
  keyed: boolean;
  product: string;
  checkId: string | null;
  solution: {
    id: string;
    summary: string;
    fix: string;
    type: "PATCH" | "ROLLUP" | "WORKAROUND";
  };
  /** The definition object exactly as the vulnerabilities search serves it. */
  definition: Record<string, unknown>;
}

export interface SimCatalog {
  vulnerabilities: SimVulnerability[];
  byId: ReadonlyMap<string, SimVulnerability>;
}

/** Builds `size` definitions (at least the fixed configuration checks). */
export function createRapid7Catalog(random: Random, size: number): SimCatalog {
  const vulnerabilities = CONFIG_CHECKS.map((check) =>
    buildConfigCheck(random, check),
  );
  for (let i = 0; vulnerabilities.length < size; i++) {
    vulnerabilities.push(buildCveVulnerability(random, i));
  }
  const byId = new Map(vulnerabilities.map((item) => [item.id, item]));
  return { vulnerabilities, byId };
}

/** Proof HTML of one finding; `largeBytes` > 0 pads it to about that size. */
export function buildProof(
  vulnerability: SimVulnerability,
  key: string,
  largeBytes: number,
): string {
  const lines = [`Vulnerable software installed: ${vulnerability.product}`];
  if (vulnerability.service) {
    lines.unshift(`Running ${vulnerability.service.protocol} service`);
  }
  if (key) lines.push(`Vulnerable file: ${key}`);
  let proof = `<p><p><ul>${lines.map((line) => `<li>${line}</li>`).join("")}`;
  for (let n = 0; proof.length < largeBytes; n++) {
    proof += `<li>/opt/vendor/lib/module-${n}.so (-rwxrwxrwx)</li>`;
  }
  return `${proof}</ul></p></p>`;
}

/** Returns a file path for `key` when one vulnerability is in several files. */
export function keyPath(vulnerability: SimVulnerability, n: number): string {
  const base = vulnerability.product.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  return `/opt/${base}/lib/${base}-${n}.jar`;
}

interface ProductTemplate {
  prefix: string;
  product: string;
  categories: string;
  service: SimService | null;
  keyed: boolean;
  solutionType: "PATCH" | "ROLLUP" | "WORKAROUND";
}

const TCP = "TCP" as const;
const UDP = "UDP" as const;

const PRODUCTS: readonly ProductTemplate[] = [
  product("apache-httpd", "Apache HTTPD", "Apache,Web", 80, TCP),
  product("openssh", "OpenBSD OpenSSH", "SSH", 22, TCP),
  product("nginx", "nginx", "Web,nginx", 443, TCP),
  product("openssl", "OpenSSL", "OpenSSL,TLS", 443, TCP),
  product("ntp", "NTP", "NTP,Network", 123, UDP),
  product("net-snmp", "Net-SNMP", "SNMP", 161, UDP),
  product("mysql", "MySQL", "Database,MySQL", 3306, TCP),
  product("microsoft-windows", "Microsoft Windows", "Microsoft,Patch"),
  product("oracle-java", "Oracle Java SE", "Java,Oracle", null, null, true),
  product("apache-log4j", "Apache Log4j", "Apache,Java", null, null, true),
  product("7-zip", "7-Zip", "7-Zip,Remote Execution"),
  product("ubuntu-linux", "Ubuntu Linux", "Ubuntu,Linux kernel"),
];

const PHRASES = [
  "Heap-based buffer overflow",
  "Use-after-free in request parsing",
  "Improper certificate validation",
  "Denial of service via crafted packet",
  "Privilege escalation through symlink race",
  "Information disclosure in error pages",
  "Remote code execution via deserialization",
];

interface ConfigCheck {
  id: string;
  title: string;
  product: string;
  service: SimService | null;
  severity: Rapid7Severity;
}

const CONFIG_CHECKS: readonly ConfigCheck[] = [
  check(
    "certificate-common-name-mismatch",
    "X.509 Certificate Subject CN Does Not Match the Entity Name",
    "TLS certificate",
    443,
    "moderate",
  ),
  check(
    "tls-server-cert-expired",
    "Expired TLS Server Certificate",
    "TLS certificate",
    443,
    "severe",
  ),
  check(
    "ssl-self-signed-certificate",
    "Self-signed TLS/SSL certificate",
    "TLS certificate",
    8443,
    "severe",
  ),
  check(
    "cifs-smb2-signing-not-required",
    "SMBv2 signing not required",
    "SMB server",
    445,
    "severe",
  ),
  check(
    "ssh-cbc-ciphers",
    "SSH CBC ciphers enabled",
    "OpenBSD OpenSSH",
    22,
    "moderate",
  ),
  check(
    "http-options-method-enabled",
    "HTTP OPTIONS Method Enabled",
    "HTTP server",
    80,
    "moderate",
  ),
  check(
    "unix-world-writable-files",
    "World writable files exist",
    "UNIX",
    null,
    "severe",
  ),
  check(
    "linux-grub-missing-passwd",
    "No password for Grub",
    "GRUB",
    null,
    "critical",
  ),
  check(
    "unix-anonymous-root-logins",
    "Anonymous root login is allowed",
    "UNIX",
    null,
    "severe",
  ),
  check(
    "generic-icmp-timestamp",
    "ICMP timestamp response",
    "ICMP",
    null,
    "moderate",
  ),
];

function product(
  prefix: string,
  name: string,
  categories: string,
  port: number | null = null,
  protocol: SimService["protocol"] | null = null,
  keyed = false,
): ProductTemplate {
  const service = port !== null && protocol ? { port, protocol } : null;
  const solutionType = service ? "ROLLUP" : "PATCH";
  return { prefix, product: name, categories, service, keyed, solutionType };
}

function check(
  id: string,
  title: string,
  product: string,
  port: number | null,
  severity: Rapid7Severity,
): ConfigCheck {
  const service: SimService | null =
    port === null ? null : { port, protocol: "TCP" };
  return { id, title, product, service, severity };
}

function buildConfigCheck(random: Random, item: ConfigCheck): SimVulnerability {
  const solution = {
    id: item.id,
    summary: `Fix: ${item.title}`,
    fix: `<p>Change the ${item.product} configuration so the check passes.</p>`,
    type: "WORKAROUND" as const,
  };
  return finish(random, {
    id: item.id,
    title: item.title,
    severity: item.severity,
    service: item.service,
    keyed: false,
    product: item.product,
    checkId: null,
    solution,
    cves: [],
    categories: item.product,
    retired: false,
  });
}

function buildCveVulnerability(
  random: Random,
  index: number,
): SimVulnerability {
  const template = random.pick(PRODUCTS);
  const year = random.int(2008, 2025);
  const number = 1000 + index * 7 + random.int(0, 6);
  const cve = `CVE-${year}-${number}`;
  const cves = random.chance(0.15) ? [cve, `CVE-${year}-${number + 3}`] : [cve];
  const id = `${template.prefix}-cve-${year}-${number}`;
  const kb = `kb50${random.int(10_000, 99_999)}`;
  const checkId =
    template.prefix === "microsoft-windows"
      ? `${id}-windows_11-22h2-${kb}`
      : null;
  const version = `${random.int(1, 12)}.${random.int(0, 30)}`;
  const solution = {
    id: `${template.prefix}-upgrade-latest`,
    summary: `Upgrade ${template.product} to the latest version`,
    fix: `<p>Download and apply the latest ${template.product} upgrade.</p>`,
    type: template.solutionType,
  };
  return finish(random, {
    id,
    title: `${template.product}: ${cve}: ${random.pick(PHRASES)}`,
    severity: pickSeverity(random),
    service: template.service,
    keyed: template.keyed,
    product: `${template.product} ${version}`,
    checkId,
    solution,
    cves,
    categories: template.categories,
    retired: random.chance(0.02),
  });
}

function pickSeverity(random: Random): Rapid7Severity {
  const roll = random.next();
  if (roll < 0.25) return "critical";
  return roll < 0.75 ? "severe" : "moderate";
}

type VulnerabilityDraft = Omit<SimVulnerability, "definition" | "riskScore"> & {
  cves: string[];
  categories: string;
};

function finish(random: Random, draft: VulnerabilityDraft): SimVulnerability {
  const score = severityScore(random, draft.severity);
  const riskScore = Math.round(score * random.int(60, 99) * 10) / 10;
  const published = isoDay(random.int(2004, 2025), random.int(1, 12));
  const { cves, categories, ...vulnerability } = draft;
  const definition: Record<string, unknown> = {
    added: published,
    categories,
    cves: cves.join(","),
    cvss_v3_score: Math.min(10, score + random.int(0, 5) / 10),
    denial_of_service: random.chance(0.1),
    description: `${draft.title}. Affects ${draft.product}.`,
    exploits: [],
    id: draft.id,
    links: cves.map((cve) => ({
      href: `http://nvd.nist.gov/vuln/detail/${cve}`,
      id: cve,
      source: "cve",
    })),
    malware_kits: [],
    modified: published,
    pci_fail: draft.severity !== "moderate",
    pci_severity_score: Math.min(5, Math.ceil(score / 2)),
    pci_status: draft.severity === "moderate" ? "pass" : "fail",
    published,
    references: cves.map((cve) => `cve:${cve}`).join(","),
    risk_score: riskScore,
    severity: draft.severity,
    severity_score: score,
    title: draft.title,
  };
  return { ...vulnerability, riskScore, definition };
}

function severityScore(random: Random, severity: Rapid7Severity): number {
  if (severity === "critical") return random.int(8, 10);
  return severity === "severe" ? random.int(4, 7) : random.int(1, 3);
}

function isoDay(year: number, month: number): string {
  return `${year}-${String(month).padStart(2, "0")}-01T00:00:00Z`;
}
