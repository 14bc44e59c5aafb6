/** A located problem in a file the user wrote: `FILE:LINE:COL: error: message`. */
export interface Diagnostic {
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly column: number;
  readonly severity: 'error' | 'warning';
  /** A stable machine-readable code, e.g. `schema`, `unknown-key`, `bad-cidr`. */
  readonly code: string;
  readonly message: string;
}
