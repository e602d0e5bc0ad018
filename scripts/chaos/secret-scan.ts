// Scans files for credentials: every occurrence of any secret form in any
// regular file under the given folders, binary files included.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

export interface SecretHit {
  path: string;
  /** Index of the secret form in the list passed to scanForSecrets. */
  formIndex: number;
  occurrences: number;
}

export interface SecretScan {
  filesScanned: number;
  bytesScanned: number;
  occurrences: number;
  hits: SecretHit[];
}

/** Counts occurrences of each form in every file under `dirs`. */
export function scanForSecrets(
  dirs: readonly string[],
  forms: readonly string[],
): SecretScan {
  const needles = forms.filter((form) => form.length > 0).map((form) => Buffer.from(form));
  const scan: SecretScan = { filesScanned: 0, bytesScanned: 0, occurrences: 0, hits: [] };

  for (const path of dirs.flatMap((dir) => listFiles(dir))) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch {
      // Removed between the listing and the read (a temp file renamed).
      continue;
    }
    scan.filesScanned++;
    scan.bytesScanned += bytes.length;
    needles.forEach((needle, formIndex) => {
      const occurrences = countOccurrences(bytes, needle);
      if (occurrences === 0) return;
      scan.occurrences += occurrences;
      scan.hits.push({ path, formIndex, occurrences });
    });
  }
  return scan;
}

function listFiles(dir: string): string[] {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return listFiles(path);
    if (entry.isFile()) return [path];
    // A symlink is read only when it points at a regular file.
    if (entry.isSymbolicLink()) {
      try {
        return statSync(path).isFile() ? [path] : [];
      } catch {
        return [];
      }
    }
    return [];
  });
}

function countOccurrences(haystack: Buffer, needle: Buffer): number {
  let count = 0;
  let from = haystack.indexOf(needle);
  while (from !== -1) {
    count++;
    from = haystack.indexOf(needle, from + needle.length);
  }
  return count;
}
