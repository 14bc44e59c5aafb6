/**
 * Rules whose matches are not modelled (`-m limit`, `-m physdev`, a mark nothing set, …) are
 * not guessed: the walk is replayed with each such match taken as matched and as not matched,
 * depth first, and the answers compared. When every replay gives the same verdict the answer
 * stands (and names what it did not need to know); otherwise it is "unknown". Pure.
 */

/** Thrown by a Decider asked for a choice beyond its prefix: the driver replays both ways. */
export class NeedsChoice extends Error {
  constructor() {
    super('the walk needs a choice its replay did not fix');
  }
}

/** Hands a walk the choices of one replay, in the order the walk asks for them. */
export class Decider {
  private next = 0;

  constructor(private readonly prefix: readonly boolean[]) {}

  decide(): boolean {
    const choice = this.prefix[this.next];
    if (choice === undefined) throw new NeedsChoice();
    this.next++;
    return choice;
  }
}

export interface Explored<T> {
  /** One result per complete replay, the all-matched replay first. */
  readonly results: readonly T[];
  /** True when more replays were needed than allowed; `results` are then partial. */
  readonly truncated: boolean;
}

/** Runs `walk` once per combination of choices it asks for, at most `limit` times. */
export function explore<T>(walk: (decider: Decider) => T, limit = 64): Explored<T> {
  const results: T[] = [];
  const pending: boolean[][] = [[]];
  let runs = 0;
  while (pending.length > 0) {
    if (runs >= limit) return { results, truncated: true };
    const prefix = pending.pop() as boolean[];
    runs++;
    try {
      results.push(walk(new Decider(prefix)));
    } catch (error) {
      if (!(error instanceof NeedsChoice)) throw error;
      // Depth first, "matched" first.
      pending.push([...prefix, false], [...prefix, true]);
    }
  }
  return { results, truncated: false };
}
