/**
 * Dedup index: the set of finding versions already in the findings log,
 * as 64-bit fingerprints in an open-addressing hash table.
 *
 * Invariants
 * - The committed index holds exactly the fingerprints of the lines in the
 *   log up to the journal's durable offset. Keys of batches that are
 *   queued or being written live in a separate pending index and move
 *   into the committed one only after the fsync that covers them, so a
 *   failed write is undone by clearing the pending index.
 * - Lookup, insert and delete are O(1) on average: linear probing at a
 *   load factor of at most 0.75, and the table doubles when it is reached.
 *
 * Layout in memory: one Uint32Array of 2 x capacity slots, the low half of
 * a fingerprint at 2i and the high half at 2i+1. The pair (0, 0) marks an
 * empty slot, so a fingerprint of (0, 0) is stored as (1, 0). The table
 * costs 8 bytes per slot, that is 10.7 to 21.3 bytes per key depending on
 * where the key count sits between two doublings (13.4 at 5,000,000
 * keys). The snapshot file stores this array as it is.
 *
 * False positives: two different finding versions share a fingerprint
 * with probability 2^-64 per pair. With n keys in the log, the chance that
 * a new version is wrongly taken for a duplicate (and dropped) is about
 * n / 2^64: 2.7e-13 at 5,000,000 keys. The chance of any collision among
 * all n keys is about n^2 / 2^65: 6.8e-7 at 5,000,000 keys and 2.7e-4 at
 * 100,000,000 keys.
 *
 * Crash behaviour: the index lives in memory only. After a crash it is
 * rebuilt from the log, or loaded from the last snapshot and completed by
 * scanning the log past the snapshot's offset (see dedup-snapshot.ts).
 */
import type { Fingerprint } from "./finding-identity.ts";

export interface DedupIndex {
  /** Number of fingerprints stored. */
  readonly size: number;
  /** Slots in the table; a power of two. */
  readonly capacity: number;
  /** Bytes used by the table. */
  readonly byteLength: number;
  has(fingerprint: Fingerprint): boolean;
  /** Inserts the fingerprint; returns false when it was already present. */
  add(fingerprint: Fingerprint): boolean;
  /** Removes the fingerprint; returns false when it was absent. */
  delete(fingerprint: Fingerprint): boolean;
  clear(): void;
  /** Returns the slot array itself (not a copy); see `copySlots`. */
  slots(): Uint32Array;
  /** Returns a copy of the slot array, for a snapshot. */
  copySlots(): Uint32Array;
}

const MIN_CAPACITY = 1024;
const MAX_LOAD = 0.75;

/** Creates an empty index sized for `expectedKeys` without a resize. */
export function createDedupIndex(expectedKeys = 0): DedupIndex {
  return new FingerprintTable(capacityFor(expectedKeys));
}

/**
 * Creates an index from a slot array saved by `copySlots`. Throws when the
 * array length is not two times a power of two or the count is wrong.
 */
export function createDedupIndexFromSlots(
  slots: Uint32Array,
  size: number,
): DedupIndex {
  const capacity = slots.length / 2;
  if (!Number.isInteger(capacity) || capacity < 1) {
    throw new Error(`dedup slots: length ${slots.length} is not even`);
  }
  if ((capacity & (capacity - 1)) !== 0) {
    throw new Error(`dedup slots: capacity ${capacity} is not a power of two`);
  }
  const table = new FingerprintTable(capacity, slots);
  const counted = table.countOccupied();
  if (counted !== size) {
    throw new Error(`dedup slots: ${counted} keys stored, header records ${size}`);
  }
  return table;
}

function capacityFor(keys: number): number {
  let capacity = MIN_CAPACITY;
  while (keys > capacity * MAX_LOAD) capacity *= 2;
  return capacity;
}

class FingerprintTable implements DedupIndex {
  #slots: Uint32Array;
  #mask: number;
  #size = 0;

  constructor(capacity: number, slots?: Uint32Array) {
    this.#slots = slots ?? new Uint32Array(capacity * 2);
    this.#mask = capacity - 1;
    if (slots) this.#size = this.countOccupied();
  }

  get size() {
    return this.#size;
  }

  get capacity() {
    return this.#mask + 1;
  }

  get byteLength() {
    return this.#slots.byteLength;
  }

  has(fingerprint: Fingerprint): boolean {
    return this.#find(normalLo(fingerprint), fingerprint.hi) >= 0;
  }

  add(fingerprint: Fingerprint): boolean {
    const lo = normalLo(fingerprint);
    const hi = fingerprint.hi;
    if (this.#find(lo, hi) >= 0) return false;

    if (this.#size + 1 > this.capacity * MAX_LOAD) this.#grow();
    this.#place(lo, hi);
    this.#size++;
    return true;
  }

  delete(fingerprint: Fingerprint): boolean {
    let slot = this.#find(normalLo(fingerprint), fingerprint.hi);
    if (slot < 0) return false;

    // Backward-shift deletion keeps every probe chain unbroken without
    // tombstones: later entries of the chain move into the freed slot.
    const slots = this.#slots;
    const mask = this.#mask;
    let next = (slot + 1) & mask;
    while (slots[2 * next] !== 0 || slots[2 * next + 1] !== 0) {
      const home = (slots[2 * next] as number) & mask;
      const distanceNext = (next - home) & mask;
      const distanceHole = (slot - home) & mask;
      if (distanceHole <= distanceNext) {
        slots[2 * slot] = slots[2 * next] as number;
        slots[2 * slot + 1] = slots[2 * next + 1] as number;
        slot = next;
      }
      next = (next + 1) & mask;
    }
    slots[2 * slot] = 0;
    slots[2 * slot + 1] = 0;
    this.#size--;
    return true;
  }

  clear(): void {
    this.#slots.fill(0);
    this.#size = 0;
  }

  slots(): Uint32Array {
    return this.#slots;
  }

  copySlots(): Uint32Array {
    return this.#slots.slice();
  }

  countOccupied(): number {
    let count = 0;
    const slots = this.#slots;
    for (let i = 0; i < slots.length; i += 2) {
      if (slots[i] !== 0 || slots[i + 1] !== 0) count++;
    }
    return count;
  }

  #find(lo: number, hi: number): number {
    const slots = this.#slots;
    const mask = this.#mask;
    let slot = lo & mask;
    for (;;) {
      const storedLo = slots[2 * slot];
      const storedHi = slots[2 * slot + 1];
      if (storedLo === lo && storedHi === hi) return slot;
      if (storedLo === 0 && storedHi === 0) return -1;
      slot = (slot + 1) & mask;
    }
  }

  #place(lo: number, hi: number): void {
    const slots = this.#slots;
    const mask = this.#mask;
    let slot = lo & mask;
    while (slots[2 * slot] !== 0 || slots[2 * slot + 1] !== 0) {
      slot = (slot + 1) & mask;
    }
    slots[2 * slot] = lo;
    slots[2 * slot + 1] = hi;
  }

  #grow(): void {
    const old = this.#slots;
    this.#slots = new Uint32Array(old.length * 2);
    this.#mask = old.length - 1;
    for (let i = 0; i < old.length; i += 2) {
      const lo = old[i] as number;
      const hi = old[i + 1] as number;
      if (lo !== 0 || hi !== 0) this.#place(lo, hi);
    }
  }
}

/** The low half with (0, 0) mapped to (1, 0), since (0, 0) marks empty. */
function normalLo(fingerprint: Fingerprint): number {
  return fingerprint.lo === 0 && fingerprint.hi === 0 ? 1 : fingerprint.lo;
}
