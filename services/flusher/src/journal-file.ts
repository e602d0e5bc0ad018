import { open, type FileHandle } from "node:fs/promises";

/** The file operations the writer uses; tests inject failures here. */
export interface JournalFile {
  write(bytes: Uint8Array, position: number): Promise<number>;
  datasync(): Promise<void>;
  truncate(lengthBytes: number): Promise<void>;
  close(): Promise<void>;
}

/** Opens the log for positional writes; the file must exist. */
export async function openJournalFile(path: string): Promise<JournalFile> {
  const handle: FileHandle = await open(path, "r+");
  return {
    async write(bytes, position) {
      const { bytesWritten } = await handle.write(
        bytes,
        0,
        bytes.length,
        position,
      );
      return bytesWritten;
    },
    datasync: () => handle.datasync(),
    truncate: (lengthBytes) => handle.truncate(lengthBytes),
    close: () => handle.close(),
  };
}
