import { QualysPageError } from "./qualys-xml-parser.ts";

/**
 * Accepts a page URL only on the configured origin and detection path,
 * without credentials, and with an id_min above the current one, so a
 * forged or looping WARNING URL is never followed.
 */
export function checkPageUrl(
  raw: string,
  endpoint: URL,
  currentIdMin: number | null,
  what: string,
): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new QualysPageError(
      "malformed",
      `${what} is not an absolute URL: ${JSON.stringify(raw)}`,
    );
  }
  const trim = (path: string) => path.replace(/\/+$/, "");
  const problems = [
    url.origin !== endpoint.origin &&
      `points to origin ${url.origin}, expected ${endpoint.origin}`,
    trim(url.pathname) !== trim(endpoint.pathname) &&
      `has path ${url.pathname}, expected ${endpoint.pathname}`,
    (url.username !== "" || url.password !== "") && "carries credentials",
  ].filter((problem): problem is string => typeof problem === "string");
  if (problems.length > 0) {
    throw new QualysPageError(
      "malformed",
      `${what} ${problems.join(" and ")}; not followed`,
    );
  }
  const idMin = idMinOf(url.toString());
  if (currentIdMin !== null && (idMin === null || idMin <= currentIdMin)) {
    throw new QualysPageError(
      "malformed",
      `${what} id_min ${idMin ?? "(none)"} does not advance past ${currentIdMin}; not followed`,
    );
  }
  return url.toString();
}

/** Returns the id_min parameter of a page URL, or null when absent. */
export function idMinOf(url: string): number | null {
  const raw = new URL(url).searchParams.get("id_min");
  return raw !== null && /^\d+$/.test(raw) ? Number(raw) : null;
}
