// Errors of Iceberg commits. A CommitConflictError leaves the table as it was: reload it and
// decide again (an append re-commits its files; a replace re-plans from the new state).

export class CommitConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CommitConflictError';
  }
}

/** A replace whose files to remove are no longer live in the table (another replace won). */
export class ReplacedFilesMissingError extends CommitConflictError {
  readonly missingPaths: readonly string[];
  constructor(missingPaths: readonly string[]) {
    super(`${missingPaths.length} file(s) to replace are no longer in the table, e.g. ${missingPaths[0]}`);
    this.name = 'ReplacedFilesMissingError';
    this.missingPaths = missingPaths;
  }
}
