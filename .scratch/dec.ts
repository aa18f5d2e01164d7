import { decodeBranches } from "../ids/detect/x86_branches.ts";
const code = await Deno.readFile("/tmp/x64.bin");
const b = decodeBranches(code.subarray(0, Number(BigInt(Deno.args[0]!) - 0xffffffff812491a0n)), 0xffffffff812491a0n);
console.log(b.length, b.filter(x=>x.kind!=="jcc").length);
