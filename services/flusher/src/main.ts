// Entry point: `bun run services/flusher [--help]`. Loads the config,
// starts the flusher and stops it gracefully on SIGTERM or SIGINT.
import { ConfigError, createLogger, errorFields } from "@vulnsub/shared";
import { formatFlusherHelp, loadFlusherConfig } from "./config.ts";
import { startFlusher } from "./flusher.ts";

const logger = createLogger({ service: "flusher" });

async function main(): Promise<number> {
  let loaded: ReturnType<typeof loadFlusherConfig>;
  try {
    loaded = loadFlusherConfig({ argv: process.argv.slice(2) });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n\n${formatFlusherHelp()}\n`);
    return 2;
  }
  if (loaded.help) {
    process.stdout.write(`${formatFlusherHelp()}\n`);
    return 0;
  }
  if (loaded.positionals.length > 0) {
    process.stderr.write(
      `unexpected argument ${JSON.stringify(loaded.positionals[0])}; see --help\n`,
    );
    return 2;
  }

  const flusher = await startFlusher({ config: loaded.config, logger });
  const stopped = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      logger.info({ event: "signal.received", signal }, `received ${signal}`);
      flusher.stop().then(
        () => resolve(0),
        (error: unknown) => {
          logger.error(
            { event: "flusher.stop_failed", ...errorFields(error) },
            "graceful stop failed",
          );
          resolve(1);
        },
      );
    };
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
  });

  try {
    await flusher.ready;
  } catch (error) {
    logger.error(
      { event: "flusher.recovery_failed", ...errorFields(error) },
      "cannot recover the findings log; the flusher does not start",
    );
    await flusher.stop().catch(() => undefined);
    return 1;
  }
  return stopped;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    logger.error({ event: "flusher.failed", ...errorFields(error) }, String(error));
    process.exit(1);
  },
);
