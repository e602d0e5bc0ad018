import { SaxesParser } from "saxes";
import {
  appendText,
  attachChild,
  createFrame,
  frameValue,
  objectOf,
  textOf,
  type XmlFrame,
  type XmlObject,
  type XmlValue,
} from "./qualys-xml-tree.ts";

/**
 * A Qualys SIMPLE_RETURN body: the response to errors (400 with codes 1901,
 * 1903, 1905, ...), to blocked calls (409 with 1960 or 1965) and to bad
 * credentials.
 */
export interface SimpleReturn {
  code: string | null;
  text: string | null;
  datetime: string | null;
  /** ITEM_LIST entries by KEY, for example SECONDS_TO_WAIT, CALLS_TO_FINISH. */
  items: Record<string, string>;
}

const MAX_TEXT_CHARS = 1024 * 1024;

/** Parses a whole SIMPLE_RETURN document; throws when it is not one. */
export function parseSimpleReturn(xml: string): SimpleReturn {
  const parser = new SaxesParser({ position: true });
  const stack: XmlFrame[] = [];
  let root: { name: string; value: XmlValue } | null = null;

  parser.on("opentag", (tag) => {
    stack.push(createFrame(tag.name, tag.attributes as Record<string, string>));
  });
  parser.on("text", (text) => {
    const top = stack[stack.length - 1];
    if (top) appendText(top, text, MAX_TEXT_CHARS);
  });
  parser.on("cdata", (text) => {
    const top = stack[stack.length - 1];
    if (top) appendText(top, text, MAX_TEXT_CHARS);
  });
  parser.on("closetag", () => {
    const frame = stack.pop() as XmlFrame;
    const parent = stack[stack.length - 1];
    const value = frameValue(frame);
    if (parent) attachChild(parent, frame.name, value);
    else root = { name: frame.name, value };
  });
  parser.write(xml).close();

  const parsed = root as { name: string; value: XmlValue } | null;
  if (!parsed || parsed.name !== "SIMPLE_RETURN") {
    throw new Error(
      `expected SIMPLE_RETURN, found ${parsed?.name ?? "no element"}`,
    );
  }
  return simpleReturnOf(objectOf(parsed.value) ?? {});
}

/** Reads the fields of a SIMPLE_RETURN element already turned into JSON. */
export function simpleReturnOf(root: XmlObject): SimpleReturn {
  const response = objectOf(root.RESPONSE) ?? {};
  const items: Record<string, string> = {};
  const list = objectOf(response.ITEM_LIST);
  const entries = list?.ITEM;
  for (const entry of Array.isArray(entries) ? entries : []) {
    const item = objectOf(entry);
    const key = textOf(item?.KEY);
    const value = textOf(item?.VALUE);
    if (key !== null && value !== null) items[key] = value;
  }
  return {
    code: textOf(response.CODE),
    text: textOf(response.TEXT),
    datetime: textOf(response.DATETIME),
    items,
  };
}

/** One-line description: "1905 parameter ids has invalid value: ...". */
export function describeSimpleReturn(value: SimpleReturn): string {
  const text = (value.text ?? "").replace(/\s+/g, " ").trim();
  return `SIMPLE_RETURN code ${value.code ?? "(none)"}: ${text || "(no text)"}`;
}
