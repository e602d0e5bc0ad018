import type { Random } from "./common.ts";

/**
 * Static material the Tenable dataset draws from: plugins, service ports
 * and host names. Everything is built from the seeded random generator, so
 * one seed always gives the same catalog.
 */

export interface SimPlugin {
  id: number;
  name: string;
  family: string;
  familyId: number;
  type: "local" | "remote" | "combined";
  /** 0 info, 1 low, 2 medium, 3 high, 4 critical. */
  severityId: number;
  riskFactor: string;
  cves: string[];
  cvssBaseScore: number | null;
  cvss3BaseScore: number | null;
  hasPatch: boolean;
  exploitAvailable: boolean | null;
  publicationDate: string;
  modificationDate: string;
  synopsis: string;
  description: string;
  solution: string;
  seeAlso: string[];
  /** Location of the finding: the host itself or one network service. */
  serviceKind: ServiceKind;
}

export type ServiceKind =
  | "host"
  | "web"
  | "ssh"
  | "smb"
  | "rdp"
  | "rpc"
  | "udp";

export interface SimService {
  port: number;
  protocol: "TCP" | "UDP";
  /** Omitted for host-level findings, as in real chunks. */
  service: string | null;
}

export const SEVERITY_NAMES = ["info", "low", "medium", "high", "critical"];

/** Ports each service kind can be found on. */
export const SERVICE_PORTS: Readonly<Record<ServiceKind, SimService[]>> = {
  host: [
    { port: 0, protocol: "TCP", service: null },
    { port: 0, protocol: "UDP", service: null },
  ],
  web: [
    { port: 80, protocol: "TCP", service: "www" },
    { port: 443, protocol: "TCP", service: "www" },
    { port: 8080, protocol: "TCP", service: "www" },
    { port: 8443, protocol: "TCP", service: "www" },
  ],
  ssh: [{ port: 22, protocol: "TCP", service: "ssh" }],
  smb: [
    { port: 445, protocol: "TCP", service: "cifs" },
    { port: 139, protocol: "TCP", service: "smb" },
  ],
  rdp: [{ port: 3389, protocol: "TCP", service: "msrdp" }],
  rpc: [
    { port: 135, protocol: "TCP", service: "epmap" },
    { port: 49664, protocol: "TCP", service: "dce-rpc" },
    { port: 49668, protocol: "TCP", service: "dce-rpc" },
  ],
  udp: [
    { port: 123, protocol: "UDP", service: "ntp" },
    { port: 161, protocol: "UDP", service: "snmp" },
    { port: 5353, protocol: "UDP", service: "mdns" },
  ],
};

// Name templates: [product, family, family id, service kind, base severity].
// Each template yields several plugins, one per fixed-in version.
const TEMPLATES: readonly [string, string, number, ServiceKind, number][] = [
  ["Host Inventory", "General", 30, "host", 0],
  ["Installed Software Enumeration", "Settings", 32, "host", 0],
  ["Windows Cumulative Update", "Windows : Microsoft Bulletins", 41, "host", 3],
  ["Linux Kernel", "Ubuntu Local Security Checks", 55, "host", 2],
  ["OpenSSL", "General", 30, "host", 3],
  ["Apache HTTP Server", "Web Servers", 11, "web", 2],
  ["nginx", "Web Servers", 11, "web", 2],
  ["TLS Certificate Chain Check", "General", 30, "web", 1],
  ["HTTP Security Header Check", "CGI abuses", 3, "web", 0],
  ["OpenSSH", "Misc.", 24, "ssh", 2],
  ["SSH Weak Key Exchange Algorithms", "Misc.", 24, "ssh", 1],
  ["SMB Signing Not Required", "Misc.", 24, "smb", 2],
  ["SMB Server Remote Code Execution", "Windows", 20, "smb", 4],
  ["Remote Desktop Protocol Weak Encryption", "Windows", 20, "rdp", 2],
  ["DCE Services Enumeration", "Windows", 20, "rpc", 0],
  ["NTP Mode 6 Query Response", "Misc.", 24, "udp", 1],
  ["SNMP Default Community Name", "SNMP", 27, "udp", 3],
];

/** Builds the plugin catalog: 5 to 9 plugins per name template. */
export function createPluginCatalog(random: Random): SimPlugin[] {
  const plugins: SimPlugin[] = [];
  let nextId = 100_000 + random.int(0, 50_000);
  for (const [product, family, familyId, kind, baseSeverity] of TEMPLATES) {
    const variants = random.int(5, 9);
    for (let variant = 0; variant < variants; variant++) {
      nextId += random.int(3, 400);
      plugins.push(
        buildPlugin(random, nextId, product, variant, {
          family,
          familyId,
          kind,
          baseSeverity,
        }),
      );
    }
  }
  return plugins;
}

/** Returns a v4-shaped UUID drawn from `random`. */
export function randomUuid(random: Random): string {
  const hex = () => random.int(0, 0xffff).toString(16).padStart(4, "0");
  const variant = (8 + random.int(0, 3)).toString(16);
  return (
    `${hex()}${hex()}-${hex()}-4${hex().slice(1)}-` +
    `${variant}${hex().slice(1)}-${hex()}${hex()}${hex()}`
  );
}

// Host name stems, several of them outside ASCII, because real inventories
// carry names in the local script and the poller must keep them intact.
const HOST_STEMS = [
  "web",
  "db",
  "files",
  "mail",
  "build",
  "bücher",
  "münchen-fs",
  "élysée-app",
  "東京-web",
  "сервер-bd",
  "kraków-dc",
  "são-paulo-gw",
];

export const OPERATING_SYSTEMS = [
  "Microsoft Windows Server 2019 Standard",
  "Microsoft Windows Server 2022 Datacenter",
  "Microsoft Windows 11 Enterprise",
  "Ubuntu 22.04 Linux Kernel 5.15",
  "Red Hat Enterprise Linux 9.3",
  "VMware ESXi 8.0",
  "Cisco IOS 15.2",
];

/** Returns a host name stem and a numeric suffix, such as "bücher-017". */
export function randomHostname(random: Random, index: number): string {
  const stem = random.pick(HOST_STEMS);
  return `${stem}-${String(index).padStart(3, "0")}`;
}

function buildPlugin(
  random: Random,
  id: number,
  product: string,
  variant: number,
  template: {
    family: string;
    familyId: number;
    kind: ServiceKind;
    baseSeverity: number;
  },
): SimPlugin {
  const severityId = clamp(template.baseSeverity + random.int(-1, 1), 0, 4);
  const info = severityId === 0;
  const version = `${random.int(1, 9)}.${random.int(0, 24)}.${variant + 1}`;
  const name = info
    ? `${product} (${variant + 1})`
    : `${product} < ${version} Multiple Vulnerabilities`;
  const year = 2018 + random.int(0, 8);
  const cves = info ? [] : randomCves(random, year);
  const month = pad(random.int(1, 12));
  const published = `${year}-${month}-${pad(random.int(1, 28))}`;
  return {
    id,
    name,
    family: template.family,
    familyId: template.familyId,
    type: template.kind === "host" ? "local" : "remote",
    severityId,
    riskFactor: info ? "None" : capitalise(SEVERITY_NAMES[severityId] ?? ""),
    cves,
    cvssBaseScore: info ? null : score(random, severityId),
    cvss3BaseScore: info ? null : score(random, severityId),
    hasPatch: !info && random.chance(0.8),
    exploitAvailable: info ? null : random.chance(0.3),
    publicationDate: `${published}T00:00:00Z`,
    modificationDate: `${year + 1}-01-15T00:00:00Z`,
    synopsis: `The remote host is affected by an issue in ${product}.`,
    description:
      `The version of ${product} on the remote host is affected by ` +
      `one or more issues fixed in version ${version}.`,
    solution: info
      ? "n/a"
      : `Upgrade ${product} to version ${version} or later.`,
    seeAlso: info ? [] : [`https://vendor.example/advisories/${id}`],
    serviceKind: template.kind,
  };
}

function randomCves(random: Random, year: number): string[] {
  const count = random.int(1, 3);
  const cves: string[] = [];
  for (let i = 0; i < count; i++) {
    cves.push(`CVE-${year}-${random.int(1000, 49_999)}`);
  }
  return cves;
}

function score(random: Random, severityId: number): number {
  const low = [0, 0.1, 4, 7, 9][severityId] ?? 0;
  const high = [0, 3.9, 6.9, 8.9, 10][severityId] ?? 0;
  return Math.round((low + random.next() * (high - low)) * 10) / 10;
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

function pad(value: number): string {
  return String(value).padStart(2, "0");
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
