/**
 * objdump's reading of x86-64 machine code, as the branches
 * ids/detect/x86_branches.ts reports: the reference the decoder is tested
 * against. Needs binutils (scripts/setup.sh installs it).
 *
 * @module
 */
import type { Branch } from "../../ids/detect/x86_branches.ts";

/** What objdump made of `code` loaded at `base`. */
export interface Disassembly {
  /** The offset of every instruction. */
  offsets: number[];
  /** Its relative and indirect branches, as {@linkcode Branch}es. */
  branches: Branch[];
  /** Instructions objdump could not decode (`(bad)`), by offset. */
  bad: number[];
}

/** Runs `objdump -D` on `code` as raw x86-64 at `base`. */
export async function objdump(code: Uint8Array, base: bigint): Promise<Disassembly> {
  const file = await Deno.makeTempFile({ prefix: "ebpfmonitor-code-", suffix: ".bin" });
  try {
    await Deno.writeFile(file, code);
    const out = await new Deno.Command("objdump", {
      args: [
        "-D",
        "-b",
        "binary",
        "-m",
        "i386:x86-64",
        `--adjust-vma=0x${base.toString(16)}`,
        file,
      ],
      stdin: "null",
    }).output().catch((error) => {
      throw new Error(`Cannot run objdump (apt-get install binutils): ${error}`);
    });
    if (!out.success) {
      throw new Error(`objdump failed: ${new TextDecoder().decode(out.stderr).trim()}`);
    }
    const result: Disassembly = { offsets: [], branches: [], bad: [] };
    for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
      // "ffffffff81000005:\teb 00                \tjmp    0xffffffff81000007"
      const m = /^\s*([0-9a-f]+):\t[0-9a-f ]+\t(.*)$/.exec(line);
      if (!m) continue; // a continuation line of a long instruction's bytes, or a header
      const offset = Number(BigInt(`0x${m[1]}`) - base);
      const text = m[2]!.replace(/^(data16|cs|ds|notrack|bnd)\s+/g, "").trim();
      result.offsets.push(offset);
      if (text.startsWith("(bad)")) result.bad.push(offset);
      const [mnemonic = "", operand = ""] = text.split(/\s+/);
      const isJump = mnemonic.startsWith("j");
      if (mnemonic !== "call" && !isJump) continue;
      if (operand.startsWith("*")) {
        result.branches.push({ offset, kind: "indirect", target: 0n });
        continue;
      }
      const kind = mnemonic === "call" ? "call" : mnemonic === "jmp" ? "jmp" : "jcc";
      result.branches.push({ offset, kind, target: BigInt(operand.split(" ")[0]!) });
    }
    return result;
  } finally {
    await Deno.remove(file);
  }
}
