import { Writable } from "node:stream";
import { createLogger, type Logger } from "@vulnsub/shared";

/** A logger whose JSON lines are kept in memory for assertions. */
export interface LogCapture {
  logger: Logger;
  /** Every line written so far, parsed. */
  records(): Record<string, unknown>[];
  /** Lines whose `event` equals `event`. */
  events(event: string): Record<string, unknown>[];
  /** Everything written, as raw text, for secret scans. */
  text(): string;
}

export function createLogCapture(service = "poller-test"): LogCapture {
  let text = "";
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      text += String(chunk);
      callback();
    },
  });
  const logger = createLogger({ service, level: "debug", destination });
  const records = () =>
    text
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return {
    logger,
    records,
    events: (event) => records().filter((record) => record.event === event),
    text: () => text,
  };
}
