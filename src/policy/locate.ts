/**
 * Map a path in the parsed value (`['containers', 'ghost', 'ingress', 0, 'from', 0]`) back to
 * the YAML node it came from, so every diagnostic points at the offending key or value.
 */
import {
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  type Document,
  type Node,
} from 'yaml';

export type PathSegment = string | number;

export interface SourcePosition {
  readonly line: number;
  readonly column: number;
}

/** `value`: the node at the path; `key`: the key naming it in its mapping (else the value). */
export type Anchor = 'value' | 'key';

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value);
  if (key === null || key === undefined) return '';
  return undefined;
}

interface Found {
  readonly node: Node | null;
  readonly keyNode?: Node | null;
  /** The deepest node reached, when the path runs out of the document. */
  readonly nearest: Node | null;
}

function resolve(doc: Document, node: unknown): Node | null {
  let current = node;
  // An alias points at its anchor's node; follow a few hops at most.
  for (let hops = 0; hops < 8 && isAlias(current); hops++) current = current.resolve(doc);
  return (current ?? null) as Node | null;
}

function walk(doc: Document, path: readonly PathSegment[]): Found {
  let node = resolve(doc, doc.contents);
  let keyNode: Node | null | undefined;
  let nearest = node;
  for (const segment of path) {
    if (isMap(node)) {
      const wanted = String(segment);
      // The last pair wins, as in the parsed value.
      const pair = [...node.items].reverse().find((p) => isPair(p) && keyText(p.key) === wanted);
      if (pair === undefined) return { node: null, nearest };
      keyNode = (pair.key ?? null) as Node | null;
      node = resolve(doc, pair.value);
    } else if (isSeq(node) && typeof segment === 'number') {
      keyNode = undefined;
      node = resolve(doc, node.items[segment]);
    } else {
      return { node: null, nearest };
    }
    if (node === null)
      return { node: null, ...(keyNode === undefined ? {} : { keyNode }), nearest };
    nearest = node;
  }
  return { node, ...(keyNode === undefined ? {} : { keyNode }), nearest };
}

export class Locator {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  at(offset: number): SourcePosition {
    const pos = this.lines.linePos(Math.max(0, offset));
    return { line: Math.max(1, pos.line), column: Math.max(1, pos.col) };
  }

  /** The position of the node at `path`; falls back to its nearest existing ancestor. */
  locate(path: readonly PathSegment[], anchor: Anchor = 'value'): SourcePosition {
    const found = walk(this.doc, path);
    const target =
      anchor === 'key' && found.keyNode != null
        ? found.keyNode
        : (found.node ?? found.keyNode ?? found.nearest);
    const range = target?.range ?? this.doc.contents?.range;
    return this.at(range?.[0] ?? 0);
  }
}

/**
 * A locator for a policy's text, to show where a rule is (`firewall.yaml:21:9`) once the policy
 * has been read: the model keeps no positions, so the text is read again with positions.
 */
export function locatorFor(text: string): Locator {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, logLevel: 'silent' });
  return new Locator(doc, lines);
}
