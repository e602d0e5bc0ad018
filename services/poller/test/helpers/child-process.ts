import { waitUntil } from "./wait-until.ts";

/**
 * A Bun child process whose stdout JSON lines are collected as they come,
 * so tests can wait for log events. stop() sends SIGKILL and waits.
 */
export interface ChildProcess {
  readonly pid: number;
  /** Parsed JSON lines of stdout so far (other lines are skipped). */
  readonly lines: Record<string, unknown>[];
  /** Raw stdout and stderr so far. */
  output(): string;
  events(event: string): Record<string, unknown>[];
  waitForEvent(
    event: string,
    matches?: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  signal(name: "SIGTERM" | "SIGINT" | "SIGKILL"): void;
  /** Resolves with the exit code (or 128 + signal number). */
  readonly exited: Promise<number>;
  stop(): Promise<void>;
}

export function startChild(
  args: string[],
  env: Record<string, string>,
): ChildProcess {
  const child = Bun.spawn(["bun", ...args], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const lines: Record<string, unknown>[] = [];
  let raw = "";
  void collect(
    child.stdout,
    (text) => {
      raw += text;
      return text;
    },
    lines,
  );
  void collect(
    child.stderr,
    (text) => {
      raw += text;
      return "";
    },
    null,
  );

  const events = (event: string) =>
    lines.filter((line) => line.event === event);
  return {
    pid: child.pid,
    lines,
    output: () => raw,
    events,
    async waitForEvent(event, matches = () => true, timeoutMs = 20_000) {
      await waitUntil(
        `${event} from pid ${child.pid}`,
        () => events(event).some(matches),
        timeoutMs,
      );
      return events(event).find(matches) as Record<string, unknown>;
    },
    signal: (name) => child.kill(name),
    exited: child.exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
      }
      await child.exited;
    },
  };
}

async function collect(
  stream: ReadableStream<Uint8Array>,
  onText: (text: string) => string,
  lines: Record<string, unknown>[] | null,
) {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += onText(decoder.decode(chunk, { stream: true }));
    const parts = pending.split("\n");
    pending = parts.pop() ?? "";
    for (const part of parts) {
      if (!lines || !part.startsWith("{")) continue;
      try {
        lines.push(JSON.parse(part) as Record<string, unknown>);
      } catch {
        // A partial or foreign line; the raw output still has it.
      }
    }
  }
}
