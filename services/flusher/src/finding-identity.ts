/**
 * Identity of a log line: the (vendor, source, findingKey, version) that
 * the dedup index hashes. Ingest and recovery read it with the same
 * scanner, so a line accepted at ingest yields the same fingerprint when
 * the index is rebuilt from the log.
 *
 * The scanner walks the top-level members of the JSON object and stops as
 * soon as the four string fields are found. The common envelope puts them
 * first and the vendor's raw object last, so a rebuild reads a few hundred
 * bytes of each line instead of parsing it whole.
 */
export interface FindingIdentity {
  vendor: string;
  source: string;
  findingKey: string;
  version: string;
}

/** A 64-bit fingerprint as two unsigned 32-bit halves. */
export interface Fingerprint {
  lo: number;
  hi: number;
}

const IDENTITY_FIELDS = ["vendor", "source", "findingKey", "version"] as const;
type IdentityField = (typeof IDENTITY_FIELDS)[number];

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const FIELD_BYTES = IDENTITY_FIELDS.map((name) => Buffer.from(name));
const LOW_MASK = 0xffffffffn;

/**
 * Computes the fingerprint of an identity: xxHash64 of the JSON array of
 * the four fields. xxHash64 is a fixed, published algorithm, so snapshots
 * stay valid across Bun versions.
 */
export function fingerprintOf(identity: FindingIdentity): Fingerprint {
  const canonical = JSON.stringify([
    identity.vendor,
    identity.source,
    identity.findingKey,
    identity.version,
  ]);
  const hash = Bun.hash.xxHash64(canonical);
  return { lo: Number(hash & LOW_MASK), hi: Number(hash >> 32n) };
}

/**
 * Reads the identity fields of the JSON object in bytes[start, end).
 * Returns null when the bytes are not a JSON object whose first
 * occurrences of the four fields are strings. Only the members up to the
 * last identity field are checked for JSON syntax.
 */
export function readFindingIdentity(
  bytes: Uint8Array,
  start = 0,
  end = bytes.length,
): FindingIdentity | null {
  const found: Partial<Record<IdentityField, string>> = {};
  let remaining = IDENTITY_FIELDS.length;
  let pos = skipSpace(bytes, start, end);
  if (bytes[pos] !== OPEN_BRACE) return null;
  pos = skipSpace(bytes, pos + 1, end);
  if (bytes[pos] === CLOSE_BRACE) return null;

  while (pos < end) {
    if (bytes[pos] !== QUOTE) return null;
    const keyEnd = stringEnd(bytes, pos, end);
    if (keyEnd < 0) return null;
    const field = matchField(bytes, pos, keyEnd);
    pos = skipSpace(bytes, keyEnd, end);
    if (bytes[pos] !== COLON) return null;
    pos = skipSpace(bytes, pos + 1, end);

    let valueEnd: number;
    if (field && found[field] === undefined && bytes[pos] === QUOTE) {
      valueEnd = stringEnd(bytes, pos, end);
      if (valueEnd < 0) return null;
      const value = decodeString(bytes, pos, valueEnd);
      if (value === null) return null;
      found[field] = value;
      if (--remaining === 0) return found as FindingIdentity;
    } else {
      if (field && found[field] === undefined) return null;
      valueEnd = skipValue(bytes, pos, end);
      if (valueEnd < 0) return null;
    }

    pos = skipSpace(bytes, valueEnd, end);
    if (bytes[pos] === COMMA) {
      pos = skipSpace(bytes, pos + 1, end);
      continue;
    }
    return null;
  }
  return null;
}

function skipSpace(bytes: Uint8Array, pos: number, end: number): number {
  while (pos < end) {
    const byte = bytes[pos];
    if (byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) {
      return pos;
    }
    pos++;
  }
  return pos;
}

/** Returns the index after the closing quote of the string at pos, or -1. */
function stringEnd(bytes: Uint8Array, pos: number, end: number): number {
  for (let i = pos + 1; i < end; i++) {
    const byte = bytes[i];
    if (byte === BACKSLASH) i++;
    else if (byte === QUOTE) return i + 1;
  }
  return -1;
}

function matchField(
  bytes: Uint8Array,
  start: number,
  end: number,
): IdentityField | null {
  const length = end - start - 2;
  for (let f = 0; f < FIELD_BYTES.length; f++) {
    const name = FIELD_BYTES[f] as Buffer;
    if (name.length !== length) continue;
    let equal = true;
    for (let i = 0; i < length && equal; i++) {
      equal = bytes[start + 1 + i] === name[i];
    }
    if (equal) return IDENTITY_FIELDS[f] as IdentityField;
  }
  return null;
}

function decodeString(
  bytes: Uint8Array,
  start: number,
  end: number,
): string | null {
  const buffer = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Without escapes or control characters the bytes between the quotes
  // are the value itself, so JSON.parse is needed only for the rest.
  let plain = true;
  for (let i = start + 1; i < end - 1 && plain; i++) {
    const byte = buffer[i] as number;
    plain = byte !== BACKSLASH && byte >= 0x20;
  }
  if (plain) return buffer.toString("utf8", start + 1, end - 1);

  const text = buffer.toString("utf8", start, end);
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "string" ? value : null;
  } catch {
    return null;
  }
}

/** Returns the index after the JSON value at pos, or -1 when malformed. */
function skipValue(bytes: Uint8Array, pos: number, end: number): number {
  const first = bytes[pos];
  if (first === QUOTE) return stringEnd(bytes, pos, end);
  if (first !== OPEN_BRACE && first !== OPEN_BRACKET) {
    let i = pos;
    while (i < end) {
      const byte = bytes[i];
      if (byte === COMMA || byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
        break;
      }
      if (byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09) {
        break;
      }
      i++;
    }
    return i > pos ? i : -1;
  }

  let depth = 0;
  for (let i = pos; i < end; i++) {
    const byte = bytes[i];
    if (byte === QUOTE) {
      const after = stringEnd(bytes, i, end);
      if (after < 0) return -1;
      i = after - 1;
    } else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
      depth++;
    } else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}
