/** A mistake in the command line or configuration: printed without a stack, exit code 2. */
export class UsageError extends Error {}
