// Follows the JSON log events of every process of the chaos stack: who
// holds each job lock, how often a lock changed hands, and waits for the
// next event that matches a condition (the trigger of a timed kill).
import type { Vendor } from "@vulnsub/shared";
import type { JsonEvent } from "../lib/processes.ts";

/** One run of one service: its slot name and run number. */
export interface RunRef {
  name: string;
  vendor: Vendor | null;
  run: number;
}

export interface TrackedEvent {
  source: RunRef;
  event: JsonEvent;
  /** Host clock when the harness read the line. */
  receivedAtMs: number;
}

export interface LockHolder {
  source: RunRef;
  fencingToken: string;
  acquiredAtMs: number;
}

export type EventListener = (tracked: TrackedEvent) => void;

export interface EventTracker {
  /** Feeds one event read from a service's stdout. */
  record(source: RunRef, event: JsonEvent): void;
  /** Marks a run as exited, which ends any lock tenure it had. */
  recordExit(source: RunRef): void;
  /** Calls `listener` for every later event; returns the unsubscribe. */
  subscribe(listener: EventListener): () => void;
  /**
   * Resolves with the next event that matches, or undefined after
   * `timeoutMs`. A match is delivered synchronously to `onMatch` first,
   * so a kill can follow an event without waiting for a promise turn.
   */
  waitFor(
    match: (tracked: TrackedEvent) => boolean,
    timeoutMs: number,
    onMatch?: (tracked: TrackedEvent) => void,
  ): Promise<TrackedEvent | undefined>;
  /** The run that took the vendor's job lock last and still holds it. */
  holder(vendor: Vendor): LockHolder | undefined;
  /** lock.acquired events per vendor, restarts and takeovers included. */
  lockAcquisitions(vendor: Vendor): number;
  /** Cycles the poll loop completed (see isCycleCompleted). */
  cyclesCompleted(vendor: Vendor): number;
  /** Count of events by event name, over every process. */
  count(eventName: string): number;
  countFor(vendor: Vendor, eventName: string): number;
  /** Count of events with this name whose `code` field is `code`. */
  countWithCode(eventName: string, code: string): number;
}

/**
 * True for the poll loop's cycle.completed, logged after the last batch of
 * the cycle was acked. It carries durationMs; the Rapid7 adapter logs an
 * event of the same name without it when its last page is fetched, before
 * those acks.
 */
export function isCycleCompleted(event: JsonEvent): boolean {
  return event.event === "cycle.completed" && typeof event.durationMs === "number";
}

export function createEventTracker(): EventTracker {
  const listeners = new Set<EventListener>();
  const holders = new Map<Vendor, LockHolder>();
  const acquisitions = new Map<Vendor, number>();
  const counts = new Map<string, number>();

  const sameRun = (a: RunRef, b: RunRef) => a.name === b.name && a.run === b.run;
  const releaseIfHolder = (source: RunRef) => {
    if (!source.vendor) return;
    const holder = holders.get(source.vendor);
    if (holder && sameRun(holder.source, source)) holders.delete(source.vendor);
  };
  const bump = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);

  const record = (source: RunRef, event: JsonEvent) => {
    const name = typeof event.event === "string" ? event.event : "";
    const tracked = { source, event, receivedAtMs: Date.now() };
    if (name) {
      bump(name);
      if (typeof event.code === "string") bump(`${name}\u0000code\u0000${event.code}`);
      if (source.vendor) bump(`${source.vendor}\u0000${name}`);
    }
    if (source.vendor && isCycleCompleted(event)) bump(`${source.vendor}\u0000cycles`);
    if (source.vendor && name === "lock.acquired") {
      acquisitions.set(source.vendor, (acquisitions.get(source.vendor) ?? 0) + 1);
      holders.set(source.vendor, {
        source,
        fencingToken: String(event.fencingToken ?? ""),
        acquiredAtMs: tracked.receivedAtMs,
      });
    }
    if (name === "lock.lost" || name === "lock.released" || name === "poller.stopped") {
      releaseIfHolder(source);
    }
    for (const listener of [...listeners]) listener(tracked);
  };

  const subscribe = (listener: EventListener) => {
    listeners.add(listener);
    return () => void listeners.delete(listener);
  };

  const waitFor: EventTracker["waitFor"] = (match, timeoutMs, onMatch) =>
    new Promise((resolve) => {
      const finish = (value: TrackedEvent | undefined) => {
        clearTimeout(timer);
        unsubscribe();
        resolve(value);
      };
      const unsubscribe = subscribe((tracked) => {
        if (!match(tracked)) return;
        onMatch?.(tracked);
        finish(tracked);
      });
      const timer = setTimeout(() => finish(undefined), timeoutMs);
    });

  return {
    record,
    recordExit: releaseIfHolder,
    subscribe,
    waitFor,
    holder: (vendor) => holders.get(vendor),
    lockAcquisitions: (vendor) => acquisitions.get(vendor) ?? 0,
    cyclesCompleted: (vendor) => counts.get(`${vendor}\u0000cycles`) ?? 0,
    count: (eventName) => counts.get(eventName) ?? 0,
    countFor: (vendor, eventName) => counts.get(`${vendor}\u0000${eventName}`) ?? 0,
    countWithCode: (eventName, code) =>
      counts.get(`${eventName}\u0000code\u0000${code}`) ?? 0,
  };
}
