import { withGuest } from "../ids/cli/session.ts";
await withGuest({}, async (guest) => {
  const k = guest.profile.kallsyms;
  const start = k.lookup("x64_sys_call")!;
  const mem = guest.memory();
  const bytes = await mem.read(start, 16384);
  await Deno.writeFile("/tmp/x64.bin", bytes);
  console.log(start.toString(16));
});
