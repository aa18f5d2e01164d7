/**
 * Reading the operator's JSON files (policy, baseline) with errors that name
 * the file and what went wrong.
 *
 * @module
 */

/** Parses `text` as JSON; a syntax error names `source`. */
export function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`Cannot parse ${source}: ${(error as Error).message}`);
  }
}

/** Reads the file at `path`; an error names it as `what path`. */
export async function readFileText(path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new Error(`Cannot read ${what} ${path}: ${(error as Error).message}`);
  }
}
