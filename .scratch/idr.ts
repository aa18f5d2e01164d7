import { withGuest } from "../tests/_helpers/agent.ts";
import { initPidNamespace, listPids } from "../ids/os/pids.ts";
await withGuest(async (guest) => {
  const { items, memory } = await guest.processes("bulk");
  const ns = await initPidNamespace(memory, guest.profile, items[0]!.addr);
  const pids = await listPids(memory, guest.profile, ns);
  const nrs = new Set(pids.map((p) => p.nr));
  console.log(pids.length, items.length, items.filter((p) => !nrs.has(p.pid)).map((p) => `${p.pid} ${p.comm}`));
  console.log(pids.slice(0,5).map(p=>p.nr), pids.slice(-5).map(p=>p.nr));
});
