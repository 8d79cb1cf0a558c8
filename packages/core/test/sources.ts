import type { Consumer, InRecord, Position } from "../src/types.js";

/** An ordered source over fixed lines, committing `next` positions like the file channel does. */
export function orderedSource(lines: string[]): Consumer & { committed: number; commit(ps: Position[]): Promise<void> } {
  let at = 0;
  const src = {
    committed: 0,
    capabilities: { ordering: "stream" as const, batching: true },
    async receive(max: number): Promise<InRecord[]> {
      const out: InRecord[] = [];
      while (out.length < max && at < lines.length) {
        out.push({ value: lines[at]!, position: { stream: "s", offset: at, next: at + 1 } });
        at++;
      }
      return out;
    },
    async commit(ps: Position[]) {
      for (const p of ps) src.committed = Math.max(src.committed, Number(p.next));
    },
  };
  return src;
}
