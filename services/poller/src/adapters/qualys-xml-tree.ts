/**
 * Mapping of Qualys XML elements to the JSON kept in `raw`:
 * - an element with only text becomes its trimmed text;
 * - an element with children or attributes becomes an object. Attributes
 *   are "@name" keys, children are keys by element name, and the element's
 *   own non-blank text is "#text";
 * - children of list elements (names ending in _LIST, and QDS_FACTORS,
 *   TAGS, CLOUD_PROVIDER_TAGS) are always arrays. Elsewhere a repeated
 *   child name turns into an array.
 */
export type XmlValue = string | XmlObject | XmlValue[];
export interface XmlObject {
  [name: string]: XmlValue;
}

/** An element being built while the parser is inside it. */
export interface XmlFrame {
  name: string;
  attributes: Record<string, string>;
  text: string;
  children: XmlObject;
  childCount: number;
}

const LIST_ELEMENTS = new Set(["QDS_FACTORS", "TAGS", "CLOUD_PROVIDER_TAGS"]);

export function createFrame(
  name: string,
  attributes: Record<string, string>,
): XmlFrame {
  return { name, attributes, text: "", children: {}, childCount: 0 };
}

/**
 * Adds character data to a frame. Throws when the element's text would
 * pass `maxChars`, so one runaway element cannot exhaust memory.
 */
export function appendText(frame: XmlFrame, text: string, maxChars: number) {
  if (frame.text.length + text.length > maxChars) {
    throw new Error(
      `element ${frame.name} has more than ${maxChars} characters of text`,
    );
  }
  frame.text += text;
}

export function frameValue(frame: XmlFrame): XmlValue {
  const text = frame.text.trim();
  const attributeNames = Object.keys(frame.attributes);
  if (frame.childCount === 0 && attributeNames.length === 0) {
    return isListElement(frame.name) ? {} : text;
  }
  const value: XmlObject = {};
  for (const name of attributeNames) {
    value[`@${name}`] = frame.attributes[name] as string;
  }
  Object.assign(value, frame.children);
  if (text !== "") value["#text"] = text;
  return value;
}

export function attachChild(parent: XmlFrame, name: string, value: XmlValue) {
  parent.childCount++;
  const existing = parent.children[name];
  if (isListElement(parent.name)) {
    if (Array.isArray(existing)) existing.push(value);
    else parent.children[name] = [value];
    return;
  }
  if (existing === undefined) {
    parent.children[name] = value;
  } else if (Array.isArray(existing)) {
    existing.push(value);
  } else {
    parent.children[name] = [existing, value];
  }
}

/** Text of an element value: the string, or an object's "#text". */
export function textOf(value: XmlValue | undefined): string | null {
  if (value === undefined) return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return null;
  const text = value["#text"];
  return typeof text === "string" ? text : null;
}

/** Child object of an element value, or null when absent or text. */
export function objectOf(value: XmlValue | undefined): XmlObject | null {
  if (
    value === undefined ||
    typeof value === "string" ||
    Array.isArray(value)
  ) {
    return null;
  }
  return value;
}

function isListElement(name: string): boolean {
  return name.endsWith("_LIST") || LIST_ELEMENTS.has(name);
}
