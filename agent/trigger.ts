/**
 * The event that fires the agent's eBPF programs: a call to a libc function
 * made by the agent itself through FFI, with a uprobe on that function in this
 * process only.
 *
 * @module
 */

/** The libc function the programs are attached to: cheap, and not called by Deno itself. */
export const TRIGGER_FUNCTION = "getpgrp";

let trigger: (() => number) | undefined;

/**
 * The path of the libc mapped into this process (the uprobe must name the
 * file the process really runs).
 */
export function libcPath(): string {
  const maps = Deno.readTextFileSync("/proc/self/maps");
  for (const line of maps.split("\n")) {
    const path = line.split(/\s+/)[5];
    if (path !== undefined && /\/libc(\.so\.6|-[\d.]+\.so)$/.test(path)) return path;
  }
  throw new Error("Cannot find libc in /proc/self/maps: the agent needs a glibc-linked Deno");
}

/** Calls the trigger function once; every armed program attached to it runs before it returns. */
export function fire(): void {
  if (trigger === undefined) {
    const libc = Deno.dlopen(
      libcPath(),
      {
        [TRIGGER_FUNCTION]: { parameters: [], result: "i32" },
      } as const,
    );
    const fn = libc.symbols[TRIGGER_FUNCTION];
    trigger = () => fn();
  }
  trigger();
}
