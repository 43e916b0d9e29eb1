/**
 * A command that could not do its work for a reason outside the program (a child process that
 * never became ready, a peer that never answered): printed as one line without a stack, exit
 * code 1, like a file or port the environment refuses. A stack is kept for bugs.
 */
export class CommandFailure extends Error {}
