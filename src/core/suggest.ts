/**
 * "Did you mean …?", said one way everywhere: the closest candidate by edit distance, offered
 * only when it is close enough to be a plausible typo. Pure.
 */
import { distance } from 'fastest-levenshtein';

/**
 * The candidate closest to `word`, if few enough letters differ to be a typo: one in a word of
 * up to three letters, else two (a swapped pair), or a third of the word, at most three.
 */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  const limit = word.length <= 3 ? 1 : Math.min(3, Math.max(2, Math.floor(word.length / 3)));
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

/**
 * `; did you mean "ghost"?`, or nothing. `open` is what goes before the candidate (a quote, or
 * a prefix such as `` `container: ``); the closing quote matches its first character.
 */
export function didYouMean(word: string, candidates: Iterable<string>, open = '"'): string {
  const hint = closest(word, candidates);
  return hint === undefined ? '' : `; did you mean ${open}${hint}${open.charAt(0)}?`;
}
