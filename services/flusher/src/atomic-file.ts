import { open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/**
 * Replaces the file at `path` with `bytes` so that a crash at any step
 * leaves either the old content or the new one: the bytes go to a temp
 * file in the same folder, which is fsynced, renamed over `path`, and then
 * the folder is fsynced so the rename itself is durable.
 */
export async function writeFileAtomic(
  path: string,
  bytes: Uint8Array,
): Promise<void> {
  const folder = dirname(path);
  const tempPath = join(folder, `.${basename(path)}.${process.pid}.tmp`);
  const handle = await open(tempPath, "w", 0o644);
  try {
    let written = 0;
    while (written < bytes.length) {
      const { bytesWritten } = await handle.write(
        bytes,
        written,
        bytes.length - written,
        written,
      );
      written += bytesWritten;
    }
    await handle.sync();
  } catch (error) {
    await handle.close();
    await unlink(tempPath).catch(() => undefined);
    throw error;
  }
  await handle.close();

  await rename(tempPath, path);
  await syncFolder(folder);
}

/** Fsyncs a folder so renames and new entries in it are durable. */
export async function syncFolder(folder: string): Promise<void> {
  const handle = await open(folder, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
