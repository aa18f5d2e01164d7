/**
 * The `syscall_hook` detector: the system call table and the dispatcher.
 *
 * - `sys_call_table`: every entry must be the start of a system call handler
 *   in the core kernel's text (`_stext`..`_etext`). An entry elsewhere (in a
 *   module, in memory no listed module owns) is the classic hook.
 * - `x64_sys_call()`: since Linux 6.9 (and the stable 6.6.26 / 6.1.85
 *   backports) x86-64 no longer dispatches through the table but through this
 *   function's `switch`, compiled to direct branches; rootkits now patch those.
 *   Every direct call or tail jump must go to a handler's start, every
 *   conditional jump must stay inside the function, and it must hold no
 *   indirect branch.
 *
 * Like Volatility's `check_syscall`, plus the dispatcher, which a table-only
 * check misses. Needs the symbols in kallsyms: `sys_call_table` is a data
 * symbol (CONFIG_KALLSYMS_ALL); without it only the dispatcher is checked.
 *
 * @module
 */
import type { ModuleInfo } from "../os/modules.ts";
import type { Kallsyms } from "../profile/kallsyms.ts";
import { type Alert, hex } from "./alert.ts";
import { type Detector, DetectorSkipped } from "./detector.ts";
import { decodeBranches, DecodeError } from "./x86_branches.ts";

/** The most entries a table can have (x86-64 has about 460 system calls). */
const MAX_ENTRIES = 1024;
/** The longest dispatcher this reads. */
const MAX_DISPATCH_BYTES = 64 * 1024;

/** Names of system call handlers and of what the compiler may branch to instead. */
const HANDLER =
  /^(__x64_sys_|__do_sys_|__se_sys_|__ia32_sys_|__x32_compat_sys_|__ia32_compat_sys_|sys_ni_syscall$|__x86_return_thunk$|__x86_indirect_thunk_)/;

/** Whether `addr` is the start of a system call handler. */
function isHandler(kallsyms: Kallsyms, addr: bigint): boolean {
  return kallsyms.at(addr).some((s) => HANDLER.test(s.name));
}

/** Describes where an address is, for evidence. */
export function whereIs(
  addr: bigint,
  kallsyms: Kallsyms,
  text: { start: bigint; end: bigint },
  modules: readonly ModuleInfo[],
): string {
  if (addr >= text.start && addr < text.end) {
    const symbol = kallsyms.containing(addr);
    return symbol === undefined
      ? "kernel text"
      : `kernel text: ${symbol.name}+0x${(addr - symbol.address).toString(16)}`;
  }
  const owner = modules.find((m) => addr >= m.base && addr < m.base + BigInt(m.size));
  if (owner !== undefined) return `module ${owner.name}`;
  return "outside kernel text and every listed module";
}

/** Checks the system call table and the dispatcher. */
export const syscallHookDetector: Detector = {
  name: "syscall_hook",
  description: "sys_call_table entries and x64_sys_call() branches that leave the handlers",
  async run(snapshot) {
    const { profile, mem, modules } = snapshot;
    const kallsyms = profile.kallsyms;
    const text = profile.text;
    if (text === undefined) throw new DetectorSkipped("kallsyms has no _stext/_etext");
    const inText = (addr: bigint) => addr >= text.start && addr < text.end;
    const where = (addr: bigint) => whereIs(addr, kallsyms, text, modules);
    const alerts: Alert[] = [];
    const table = kallsyms.lookup("sys_call_table", { types: "RrDd" });
    const dispatch = kallsyms.lookup("x64_sys_call", { types: "Tt" });
    if (table === undefined && dispatch === undefined) {
      throw new DetectorSkipped("kallsyms has neither sys_call_table nor x64_sys_call");
    }

    if (table !== undefined) {
      const end = kallsyms.after(table)?.address ?? table + BigInt(MAX_ENTRIES * 8);
      const entries = Math.min(Number(end - table) / 8 | 0, MAX_ENTRIES);
      const bytes = await mem.read(table, entries * 8);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let nr = 0; nr < entries; nr++) {
        const entry = view.getBigUint64(nr * 8, true);
        if (inText(entry) && isHandler(kallsyms, entry)) continue;
        alerts.push({
          detector: "syscall_hook",
          severity: "critical",
          summary: `sys_call_table[${nr}] points to ${where(entry)}, not to a system call handler`,
          evidence: {
            table: hex(table),
            nr,
            entry: hex(entry),
            where: where(entry),
          },
        });
      }
    }

    if (dispatch !== undefined) {
      const end = kallsyms.after(dispatch)?.address ?? dispatch + 4096n;
      const length = Math.min(Number(end - dispatch), MAX_DISPATCH_BYTES);
      const code = await mem.read(dispatch, length);
      const inside = (addr: bigint) => addr >= dispatch && addr < dispatch + BigInt(length);
      try {
        for (const branch of decodeBranches(code, dispatch)) {
          const at = `x64_sys_call+0x${branch.offset.toString(16)}`;
          const evidence = {
            instruction: hex(dispatch + BigInt(branch.offset)),
            at,
            kind: branch.kind,
            target: hex(branch.target),
            where: where(branch.target),
          };
          if (branch.kind === "indirect") {
            alerts.push({
              detector: "syscall_hook",
              severity: "critical",
              summary: `${at} is an indirect branch: the dispatcher has none`,
              evidence: { instruction: evidence.instruction, at, kind: branch.kind },
            });
          } else if (
            branch.kind === "jcc" ? !inside(branch.target) : !inside(branch.target) &&
              !(inText(branch.target) && isHandler(kallsyms, branch.target))
          ) {
            alerts.push({
              detector: "syscall_hook",
              severity: "critical",
              summary: `${at} branches to ${evidence.where}, not to a system call handler`,
              evidence,
            });
          }
        }
      } catch (error) {
        if (!(error instanceof DecodeError)) throw error;
        alerts.push({
          detector: "syscall_hook",
          severity: "high",
          summary: `x64_sys_call holds code the dispatcher does not: ${error.message}`,
          evidence: { function: hex(dispatch), offset: error.offset, length },
        });
      }
    }
    return alerts;
  },
};
