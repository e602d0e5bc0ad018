/** One line of a text file, without its "\n". */
export interface FileLine {
  /** 1-based line number. */
  number: number;
  text: string;
  /** False only for a last line that has no "\n" (a torn tail). */
  terminated: boolean;
}

/**
 * Streams a UTF-8 file line by line, holding one chunk and one partial
 * line in memory, so files of many gigabytes read in constant memory
 * (bounded by the longest line). A "\r" before "\n" is kept in `text`,
 * because the findings log never writes one and a checker should see it.
 */
export async function* readLines(path: string): AsyncGenerator<FileLine> {
  const decoder = new TextDecoder("utf-8", { fatal: false });
  let pending = "";
  let number = 0;

  for await (const chunk of Bun.file(path).stream()) {
    pending += decoder.decode(chunk, { stream: true });
    let start = 0;
    let newline = pending.indexOf("\n", start);
    while (newline !== -1) {
      number++;
      yield { number, text: pending.slice(start, newline), terminated: true };
      start = newline + 1;
      newline = pending.indexOf("\n", start);
    }
    pending = pending.slice(start);
  }

  pending += decoder.decode();
  if (pending.length > 0) {
    number++;
    yield { number, text: pending, terminated: false };
  }
}
