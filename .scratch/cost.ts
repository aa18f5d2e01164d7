import { withGuest } from "../tests/_helpers/agent.ts";
import { DETECTORS, takeSnapshot } from "../ids/detect/check.ts";
import { DEFAULT_POLICY } from "../ids/detect/policy.ts";
await withGuest(async (guest) => {
  const snap = await takeSnapshot(guest, "bulk");
  console.log("procs", snap.processes.length, "rt", guest.client.stats.roundTrips);
  for (const d of DETECTORS) {
    const before = guest.client.stats.roundTrips;
    const t = performance.now();
    try { await d.run(snap, { policy: DEFAULT_POLICY }); } catch (e) { console.log(d.name, String(e).slice(0, 100)); }
    console.log(d.name, guest.client.stats.roundTrips - before, (performance.now() - t).toFixed(0), "ms");
  }
});
