// A flusher started as a real child process (`bun src/main.ts`), with its
// log lines parsed so tests can wait for events such as flusher.serving.
import type { Subprocess } from "bun";
import { MAIN_PATH } from "./helpers.ts";

export interface FlusherProcess {
  readonly process: Subprocess<"ignore", "pipe", "pipe">;
  readonly lines: Record<string, unknown>[];
  /** Address from the flusher.listening line ("" when not awaited). */
  readonly address: string;
  /** Resolves with the first line whose event is `event`. */
  waitForEvent(event: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Sends the signal and waits for the exit code. */
  kill(signal: NodeJS.Signals): Promise<number>;
}

/**
 * Starts the flusher on 127.0.0.1:0 with metrics off plus `env`, and waits
 * for flusher.listening unless `awaitListening` is false.
 */
export async function spawnFlusher(
  dataDir: string,
  env: Record<string, string> = {},
  awaitListening = true,
): Promise<FlusherProcess> {
  const child = Bun.spawn(["bun", MAIN_PATH], {
    env: {
      ...process.env,
      FLUSHER_LISTEN: "127.0.0.1:0",
      DATA_DIR: dataDir,
      METRICS_LISTEN: "off",
      LOG_FORMAT: "json",
      ...env,
    },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const lines: Record<string, unknown>[] = [];
  const listeners = new Set<() => void>();
  void readLines(child.stdout, (line) => {
    try {
      lines.push(JSON.parse(line));
    } catch {
      lines.push({ text: line });
    }
    for (const listener of listeners) listener();
  });

  const waitForEvent = (event: string, timeoutMs = 20_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = () => {
        const found = lines.find((line) => line.event === event);
        if (found) {
          cleanup();
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`flusher logged no ${event} within ${timeoutMs} ms:\n` +
          lines.map((line) => JSON.stringify(line)).join("\n")));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        listeners.delete(check);
      };
      listeners.add(check);
      void child.exited.then(() => setTimeout(check, 50));
      check();
    });

  const listening = awaitListening
    ? await waitForEvent("flusher.listening")
    : { address: "" };
  return {
    process: child,
    lines,
    address: String(listening.address),
    waitForEvent,
    async kill(signal) {
      child.kill(signal);
      return child.exited;
    },
  };
}

async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let rest = "";
  for await (const chunk of stream) {
    rest += decoder.decode(chunk, { stream: true });
    let newline = rest.indexOf("\n");
    while (newline !== -1) {
      const line = rest.slice(0, newline);
      if (line.trim()) onLine(line);
      rest = rest.slice(newline + 1);
      newline = rest.indexOf("\n");
    }
  }
}
