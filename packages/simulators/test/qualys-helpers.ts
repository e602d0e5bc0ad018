import {
  startQualysSimulator,
  type QualysSimulatorHandle,
  type QualysSimulatorOptions,
} from "../src/qualys.ts";

/** Simulators started by a test file, stopped by stopAll in afterEach. */
export function createSimulatorPool() {
  const running: QualysSimulatorHandle[] = [];
  return {
    async start(
      options: Partial<QualysSimulatorOptions> = {},
    ): Promise<QualysSimulatorHandle> {
      const sim = await startQualysSimulator({
        seed: 11,
        assets: 12,
        findingsPerAsset: 4,
        ...options,
      });
      running.push(sim);
      return sim;
    },
    async stopAll() {
      await Promise.all(running.splice(0).map((sim) => sim.stop()));
    },
  };
}

export const AUTH_HEADERS = {
  authorization: `Basic ${btoa("demo:demo-password")}`,
  "x-requested-with": "vulnsub-test",
};

export const DETECTION_PATH = "/api/2.0/fo/asset/host/vm/detection/";

/** GET of the detection API with `query` (no leading "?"). */
export function getDetections(
  sim: QualysSimulatorHandle,
  query: string,
  headers: Record<string, string> = AUTH_HEADERS,
): Promise<Response> {
  return fetch(`${sim.url}${DETECTION_PATH}?${query}`, { headers });
}

/** Text of every `<name>` element in `xml`, CDATA unwrapped and trimmed. */
export function elementTexts(xml: string, name: string): string[] {
  const pattern = new RegExp(`<${name}(?: [^>]*)?>([\\s\\S]*?)</${name}>`, "g");
  return [...xml.matchAll(pattern)].map((match) =>
    (match[1] as string)
      .trim()
      .replace(/^<!\[CDATA\[([\s\S]*)\]\]>$/, "$1")
      .trim(),
  );
}

/** Returns each HOST element of a page, as XML text. */
export function hostBlocks(xml: string): string[] {
  return [...xml.matchAll(/<HOST>[\s\S]*?<\/HOST>/g)].map((match) => match[0]);
}

/** Returns the WARNING URL of a page, or null on the last page. */
export function warningUrl(xml: string): string | null {
  const warning = /<WARNING>[\s\S]*<\/WARNING>/.exec(xml)?.[0];
  if (!warning) return null;
  return elementTexts(warning, "URL")[0] ?? null;
}

/** Follows WARNING URLs from `query` and returns every page's XML. */
export async function readAllPages(
  sim: QualysSimulatorHandle,
  query: string,
  maxPages = 100,
): Promise<string[]> {
  const pages: string[] = [];
  let url: string | null = `${sim.url}${DETECTION_PATH}?${query}`;
  while (url && pages.length < maxPages) {
    const response: Response = await fetch(url, { headers: AUTH_HEADERS });
    if (response.status !== 200) {
      throw new Error(`page ${pages.length + 1}: HTTP ${response.status}`);
    }
    const xml = await response.text();
    pages.push(xml);
    url = warningUrl(xml);
  }
  return pages;
}
