// One refused input: which object, which field, what is wrong. The object is skipped as a whole (nothing of it
// is applied); every other object is still processed.
export class K8sInputError extends Error {
  constructor(
    readonly object: string,
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${object}${field ? `: ${field}` : ""}: ${problem}`);
    this.name = "K8sInputError";
  }
}
