import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { handleStopSignals } from "../../lib/processes.ts";

/**
 * Creates a fresh folder under the system temp folder for one bench run
 * and deletes it when the process exits, unless `keep` is set. SIGINT and
 * SIGTERM make the process exit with 130, so the folder is deleted and
 * every child started through spawnService is killed then too.
 */
export function createRunDir(prefix: string, keep: boolean): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  process.on("exit", () => {
    if (keep) console.log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  });
  handleStopSignals({
    onStop: (signal) => {
      console.error(`${signal}: stopping the bench`);
      process.exit(130);
    },
    onForce: () => {},
  });
  return dir;
}
