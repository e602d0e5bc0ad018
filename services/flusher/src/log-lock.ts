import { open, readFile, unlink } from "node:fs/promises";
import { VulnsubError } from "@vulnsub/shared";

/**
 * An exclusive lock on the findings log, so a second flusher on the same
 * log fails at start instead of interleaving writes. The lock file
 * `<log>.lock` contains the owner's pid. A file whose pid is not alive was
 * left by a crash (SIGKILL), and the next flusher takes it over.
 *
 * NOTE: the takeover of a dead owner's file is not atomic: two flushers
 * started in the same instant on a stale lock could both take it.
 */
export interface LogLock {
  release(): Promise<void>;
}

export async function acquireLogLock(logPath: string): Promise<LogLock> {
  const path = `${logPath}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, "wx", 0o644);
      await handle.writeFile(`${process.pid}\n`);
      await handle.sync();
      await handle.close();
      return { release: () => unlink(path).catch(() => undefined) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const owner = Number.parseInt(await readFile(path, "utf8").catch(() => ""), 10);
    if (Number.isInteger(owner) && owner !== process.pid && isAlive(owner)) {
      throw new VulnsubError(
        "flusher_unavailable",
        `findings log ${logPath} is locked by process ${owner} (${path}); ` +
          "stop that flusher, or delete the lock file if it is not a flusher",
        { context: { path, pid: owner } },
      );
    }
    await unlink(path).catch(() => undefined);
  }
  throw new VulnsubError(
    "flusher_unavailable",
    `findings log ${logPath}: cannot take the lock file ${path}`,
  );
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
