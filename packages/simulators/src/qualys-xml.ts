import { createRandom } from "./common.ts";
import type { QualysDetection, QualysHost } from "./qualys-dataset.ts";

/**
 * XML text of the simulated Qualys responses, shaped like recorded Host
 * List Detection output: DOCTYPE HOST_LIST_VM_DETECTION_OUTPUT, optional
 * elements left out when empty, CDATA for free text (sometimes on its own
 * indented line), and SIMPLE_RETURN bodies for errors.
 */

/** Output switches of a detection page (show_results, show_qds, ...). */
export interface DetectionOutputOptions {
  showResults: boolean;
  showQds: boolean;
  showQdsFactors: boolean;
  /** Seeds the RESULTS text. */
  seed: number;
}

export interface SimpleReturnItem {
  key: string;
  value: string;
}

/** Builds a SIMPLE_RETURN body, as sent with 400, 401 and 409 responses. */
export function simpleReturnXml(
  origin: string,
  datetime: string,
  code: number,
  text: string,
  items: readonly SimpleReturnItem[] = [],
): string {
  const lines = [
    '<?xml version="1.0" encoding="UTF-8" ?>',
    `<!DOCTYPE SIMPLE_RETURN SYSTEM "${origin}/api/2.0/simple_return.dtd">`,
    "<SIMPLE_RETURN>",
    "  <RESPONSE>",
    `    <DATETIME>${datetime}</DATETIME>`,
    `    <CODE>${code}</CODE>`,
    `    <TEXT>${escapeText(text)}</TEXT>`,
  ];
  if (items.length > 0) {
    lines.push("    <ITEM_LIST>");
    for (const item of items) {
      lines.push(
        "      <ITEM>",
        `        <KEY>${escapeText(item.key)}</KEY>`,
        `        <VALUE>${escapeText(item.value)}</VALUE>`,
        "      </ITEM>",
      );
    }
    lines.push("    </ITEM_LIST>");
  }
  lines.push("  </RESPONSE>", "</SIMPLE_RETURN>", "");
  return lines.join("\n");
}

/** Start of a detection page, up to and including the HOST_LIST opening. */
export function pageHeadXml(
  origin: string,
  apiVersion: string,
  datetime: string,
): string {
  const dtd = `${origin}/api/${apiVersion}/fo/asset/host/vm/detection/host_list_vm_detection_output.dtd`;
  return [
    '<?xml version="1.0" encoding="UTF-8" ?>',
    `<!DOCTYPE HOST_LIST_VM_DETECTION_OUTPUT SYSTEM "${dtd}">`,
    "<HOST_LIST_VM_DETECTION_OUTPUT>",
    "  <RESPONSE>",
    `    <DATETIME>${datetime}</DATETIME>`,
    "",
  ].join("\n");
}

export function hostListOpenXml(): string {
  return "    <HOST_LIST>\n";
}

export function hostListCloseXml(): string {
  return "    </HOST_LIST>\n";
}

/**
 * End of a detection page. `warning` is the truncation notice (code 1980)
 * with the URL of the next page; the last page has none.
 */
export function pageTailXml(
  warning: { limit: number; url: string } | null,
): string {
  const lines: string[] = [];
  if (warning) {
    lines.push(
      "    <WARNING>",
      "      <CODE>1980</CODE>",
      `      <TEXT>${warning.limit} record limit exceeded. Use URL to get next batch of results.</TEXT>`,
      `      <URL>${cdata(warning.url)}</URL>`,
      "    </WARNING>",
    );
  }
  lines.push("  </RESPONSE>", "</HOST_LIST_VM_DETECTION_OUTPUT>", "");
  return lines.join("\n");
}

/** Builds one HOST element with the given (already filtered) detections. */
export function hostXml(
  host: QualysHost,
  detections: readonly QualysDetection[],
  options: DetectionOutputOptions,
): string {
  const parts: string[] = ["      <HOST>\n"];
  const add = (name: string, value: string | number | null) => {
    if (value !== null) parts.push(`        <${name}>${value}</${name}>\n`);
  };
  const addText = (name: string, value: string | null, indent = 8) => {
    if (value !== null)
      parts.push(textElement(name, value, indent, host.spacedCdata));
  };

  add("ID", host.id);
  add("IP", host.ip);
  add("IPV6", host.ipv6);
  add("TRACKING_METHOD", host.trackingMethod);
  addText("OS", host.os);
  addText("DNS", host.dns);
  if (host.dnsData) {
    parts.push("        <DNS_DATA>\n");
    addText("HOSTNAME", host.dnsData.hostname, 10);
    addText("DOMAIN", host.dnsData.domain, 10);
    addText("FQDN", host.dnsData.fqdn, 10);
    parts.push("        </DNS_DATA>\n");
  }
  addText("NETBIOS", host.netbios);
  addText("QG_HOSTID", host.qgHostId);
  add("LAST_SCAN_DATETIME", host.lastScan);
  add("LAST_VM_SCANNED_DATE", host.lastScan);
  add("LAST_VM_SCANNED_DURATION", host.lastVmScannedDurationSec);
  parts.push("        <DETECTION_LIST>\n");
  for (const detection of detections) {
    parts.push(detectionXml(detection, host.spacedCdata, options));
  }
  parts.push("        </DETECTION_LIST>\n", "      </HOST>\n");
  return parts.join("");
}

/** Deterministic RESULTS text of `bytes` ASCII characters. */
export function resultsText(detection: QualysDetection, seed: number): string {
  const random = createRandom(
    seed ^ Math.imul(detection.index + 1, 2654435761),
  );
  const header = random.chance(0.5)
    ? "Package\tInstalled Version\tRequired Version\n"
    : "CIPHER\tKEY-EXCHANGE\tAUTHENTICATION\tMAC\tENCRYPTION(KEY-STRENGTH)\n";
  const lines: string[] = [header];
  let size = header.length;
  while (size < detection.resultsBytes) {
    const line =
      `lib${random.pick(["ssl", "xml2", "curl", "z"])}-${random.int(1, 99)}` +
      `\t${random.int(1, 9)}.${random.int(0, 40)}.${random.int(0, 300)}` +
      `\t${random.int(1, 9)}.${random.int(0, 40)}.${random.int(0, 300)}\n`;
    lines.push(line);
    size += line.length;
  }
  return lines.join("").slice(0, Math.max(detection.resultsBytes, 1)).trimEnd();
}

function detectionXml(
  detection: QualysDetection,
  spaced: boolean,
  options: DetectionOutputOptions,
): string {
  const parts: string[] = ["          <DETECTION>\n"];
  const add = (name: string, value: string | number | null) => {
    if (value !== null) parts.push(`            <${name}>${value}</${name}>\n`);
  };

  add("UNIQUE_VULN_ID", detection.uniqueVulnId);
  add("QID", detection.qid);
  add("TYPE", detection.type);
  add("SEVERITY", detection.severity);
  add("PORT", detection.port);
  add("PROTOCOL", detection.protocol);
  add("SSL", detection.ssl);
  if (options.showResults) {
    // Some RESULTS end in a newline inside the CDATA, as recorded output does.
    const text = resultsText(detection, options.seed);
    const body = spaced ? `${text}\n` : text;
    parts.push(`            <RESULTS>${cdata(body)}</RESULTS>\n`);
  }
  add("STATUS", detection.status);
  add("FIRST_FOUND_DATETIME", detection.firstFound);
  add("LAST_FOUND_DATETIME", detection.lastFound);
  if (options.showQds && detection.qds !== null) {
    parts.push(
      `            <QDS severity="${qdsSeverity(detection.qds)}">${detection.qds}</QDS>\n`,
    );
    if (options.showQdsFactors) parts.push(qdsFactorsXml(detection));
  }
  add("TIMES_FOUND", detection.timesFound);
  add("LAST_TEST_DATETIME", detection.lastTest);
  add("LAST_UPDATE_DATETIME", detection.lastUpdate);
  add("LAST_FIXED_DATETIME", detection.lastFixed);
  add("FIRST_REOPENED_DATETIME", detection.firstReopened);
  add("LAST_REOPENED_DATETIME", detection.lastReopened);
  if (detection.timesReopened > 0)
    add("TIMES_REOPENED", detection.timesReopened);
  add("IS_IGNORED", 0);
  add("IS_DISABLED", 0);
  add("LAST_PROCESSED_DATETIME", detection.lastProcessed);
  if (detection.cves.length > 0) {
    parts.push(textElement("ASSET_CVE", detection.cves.join(", "), 12, spaced));
  }
  parts.push("          </DETECTION>\n");
  return parts.join("");
}

function qdsFactorsXml(detection: QualysDetection): string {
  const cvss = (((detection.qds ?? 0) % 90) / 10 + 1).toFixed(1);
  return [
    "            <QDS_FACTORS>",
    `              <QDS_FACTOR name="CVSS">${cdata(cvss)}</QDS_FACTOR>`,
    `              <QDS_FACTOR name="CVSS_version">${cdata("v3.x")}</QDS_FACTOR>`,
    "            </QDS_FACTORS>",
    "",
  ].join("\n");
}

// QDS bands: Critical 90-100, High 70-89, Medium 40-69, Low 1-39.
function qdsSeverity(qds: number): string {
  if (qds >= 90) return "CRITICAL";
  if (qds >= 70) return "HIGH";
  if (qds >= 40) return "MEDIUM";
  return "LOW";
}

function textElement(
  name: string,
  value: string,
  indent: number,
  spaced: boolean,
): string {
  const pad = " ".repeat(indent);
  if (!spaced) return `${pad}<${name}>${cdata(value)}</${name}>\n`;
  return `${pad}<${name}>\n${pad}  ${cdata(value)}\n${pad}</${name}>\n`;
}

/** Wraps text in CDATA, splitting any "]]>" it contains. */
export function cdata(value: string): string {
  return `<![CDATA[${value.replaceAll("]]>", "]]]]><![CDATA[>")}]]>`;
}

function escapeText(value: string): string {
  return value
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;");
}
