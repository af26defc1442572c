/**
 * Raw member values of a JSON document's top-level object. Intel signs the
 * exact bytes of the inner `tcbInfo` / `enclaveIdentity` object, so the
 * verifier must take those bytes from the file text, not re-serialize them.
 *
 * @module
 */
import { ParseError } from "../../lib/errors.ts";

const WS = new Set([" ", "\t", "\n", "\r"]);

/**
 * The raw text of every member value of the top-level object of `text`, which
 * must be valid JSON (checked with `JSON.parse` first). A duplicated
 * top-level key is refused: it would make "what was signed" ambiguous.
 */
export function topLevelRawMembers(text: string, what: string): Map<string, string> {
  try {
    const v = JSON.parse(text);
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not an object");
  } catch (e) {
    throw new ParseError(
      what,
      `${what} is not a JSON object: ${e instanceof Error ? e.message : e}`,
    );
  }
  let i = 0;
  const ws = () => {
    while (i < text.length && WS.has(text[i])) i++;
  };
  // Index just past the string starting at i (text[i] === '"').
  const skipString = (): number => {
    let j = i + 1;
    while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
    return j + 1;
  };
  const skipValue = () => {
    let depth = 0;
    do {
      const c = text[i];
      if (c === '"') i = skipString();
      else {
        if (c === "{" || c === "[") depth++;
        else if (c === "}" || c === "]") depth--;
        i++;
        if (depth === 0 && c !== "}" && c !== "]") {
          // A scalar: runs up to the next delimiter.
          while (i < text.length && !WS.has(text[i]) && !",}]".includes(text[i])) i++;
        }
      }
    } while (depth > 0);
  };
  const out = new Map<string, string>();
  ws();
  i++; // '{'
  ws();
  while (text[i] !== "}") {
    const keyEnd = skipString();
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = keyEnd;
    ws();
    i++; // ':'
    ws();
    const start = i;
    skipValue();
    if (out.has(key)) throw new ParseError(what, `${what} has the key "${key}" twice`);
    out.set(key, text.slice(start, i));
    ws();
    if (text[i] === ",") {
      i++;
      ws();
    }
  }
  return out;
}
