import type { Random } from "./common.ts";

/**
 * Asset identity of the simulated InsightVM estate: operating systems,
 * host names (some non-ASCII, some short), addresses (some IPv6, some
 * missing), MAC addresses and the console UUID of asset ids.
 */

export interface OsProfile {
  family: string;
  name: string;
  version: string;
  description: string;
  vendor: string;
}

export const OS_PROFILES: readonly OsProfile[] = [
  os("Linux", "Linux", "22.04", "Ubuntu Linux 22.04", "Ubuntu"),
  os(
    "Linux",
    "Enterprise Linux",
    "7.9",
    "Red Hat Enterprise Linux 7.9",
    "Red Hat",
  ),
  os("Windows", "Windows 11", "22H2", "Microsoft Windows 11 22H2", "Microsoft"),
  os(
    "Windows",
    "Windows Server 2019",
    "1809",
    "Microsoft Windows Server 2019",
    "Microsoft",
  ),
];

export const HOST_NAMES = [
  (n: number) => `web-${n}.corp.example`,
  (n: number) => `db${n}`,
  (n: number) => `sërver-münchen-${n}.example.de`,
  (n: number) => `東京-app-${n}.example.jp`,
  (n: number) => `Win11-${n}`,
  (n: number) => `café-pos-${n}`,
];

export function pickIp(random: Random, index: number): string | null {
  const roll = random.next();
  if (roll < 0.05) return null;
  if (roll < 0.12) return `fd00:7::${index.toString(16)}`;
  return `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`;
}

function os(
  family: string,
  name: string,
  version: string,
  description: string,
  vendor: string,
): OsProfile {
  return { family, name, version, description, vendor };
}

export function randomHex(random: Random, length: number): string {
  let text = "";
  while (text.length < length) text += random.int(0, 15).toString(16);
  return text;
}

export function randomUuid(random: Random): string {
  const hex = randomHex(random, 32);
  return [
    hex.slice(0, 8),
    hex.slice(8, 12),
    hex.slice(12, 16),
    hex.slice(16, 20),
    hex.slice(20),
  ].join("-");
}

export function randomMac(random: Random): string {
  const bytes = Array.from({ length: 6 }, () => randomHex(random, 2));
  return bytes.join(":").toUpperCase();
}
