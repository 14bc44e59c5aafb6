/**
 * "Did you mean …?", said one way everywhere: the closest candidate by edit distance, offered
 * only when it is close enough to be a plausible typo. Pure.
 */
import { distance } from 'fastest-levenshtein';

/** The candidate closest to `word`, if at most a third of its letters (and 3) differ. */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  const limit = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    if (candidate === word) continue;
    const d = distance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance || (d === bestDistance && best !== undefined && candidate < best)) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= limit ? best : undefined;
}

/** `; did you mean "ghost"?`, or nothing. */
export function didYouMean(word: string, candidates: Iterable<string>, quote = '"'): string {
  const hint = closest(word, candidates);
  return hint === undefined ? '' : `; did you mean ${quote}${hint}${quote}?`;
}
