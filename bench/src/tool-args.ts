/**
 * A bench tool's options, parsed by `parse` (node:util's parseArgs). A bad option is the caller's
 * mistake: it is named in one line, `<tool>: <problem>; see --help`, and the tool exits 2, without a stack.
 */
export function toolArgs<T>(tool: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code?.startsWith("ERR_PARSE_ARGS_") !== true) throw error;
    process.stderr.write(`${tool}: ${(error as Error).message}; see --help\n`);
    process.exit(2);
  }
}
