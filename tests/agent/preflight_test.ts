// The agent's preflight checks: unit tests over fixture files, and the real agent started as an
// unprivileged user (needs root to drop to nobody with setpriv).
import assert from "node:assert/strict";
import { effectiveCapabilities, preflightProblems, SYSTEM_PATHS } from "../../agent/preflight.ts";
import { hasSetpriv, IS_ROOT, MAIN } from "../_helpers/agent.ts";

/** A /proc/PID/status excerpt with the given effective capability set. */
function statusText(capEff: bigint): string {
  return [
    "Name:\tdeno",
    "Umask:\t0022",
    "State:\tR (running)",
    "Uid:\t0\t0\t0\t0",
    "CapInh:\t0000000000000000",
    "CapPrm:\t000001ffffffffff",
    `CapEff:\t${capEff.toString(16).padStart(16, "0")}`,
    "CapBnd:\t000001ffffffffff",
    "",
  ].join("\n");
}

const bit = (n: number) => 1n << BigInt(n);
const CAP_SYS_ADMIN = 21;
const CAP_PERFMON = 38;
const CAP_BPF = 39;

/** Runs `body` with a temporary directory holding `files`, removed afterwards. */
async function withFiles(
  files: Record<string, string>,
  body: (dir: string) => void | Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ebpfmonitor-preflight-" });
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("effectiveCapabilities() reads CapEff as a bit set", async (t) => {
  const cases: [string, bigint][] = [
    ["nothing", 0n],
    ["full root", 0x1ff_ffff_ffffn],
    ["CAP_SYS_ADMIN only", bit(CAP_SYS_ADMIN)],
    ["CAP_BPF and CAP_PERFMON", bit(CAP_BPF) | bit(CAP_PERFMON)],
  ];
  for (const [name, caps] of cases) {
    await t.step(name, () => assert.equal(effectiveCapabilities(statusText(caps)), caps));
  }
  await t.step("this process's own status", () => {
    const caps = effectiveCapabilities(Deno.readTextFileSync("/proc/self/status"));
    if (IS_ROOT) assert.equal(caps >> BigInt(CAP_SYS_ADMIN) & 1n, 1n);
  });
});

Deno.test("effectiveCapabilities() rejects a status without CapEff", () => {
  assert.throws(
    () => effectiveCapabilities("Name:\tdeno\nCapPrm:\t0000000000000000\n"),
    /Cannot read CapEff/,
  );
  assert.throws(() => effectiveCapabilities("CapEff:\tnot hex\n"), /Cannot read CapEff/);
});

Deno.test("preflightProblems() names the missing privileges, BTF and uprobe support", async () => {
  await withFiles({ status: statusText(0n) }, (dir) => {
    const problems = preflightProblems({
      status: `${dir}/status`,
      btf: `${dir}/no-btf`,
      uprobe: `${dir}/no-uprobe-type`,
    });
    assert.equal(problems.length, 3, problems.join("\n"));
    assert.match(problems[0]!, /needs root \(CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN\)/);
    assert.match(problems[1]!, /has no BTF .*no-btf is missing.*CONFIG_DEBUG_INFO_BTF=y/);
    assert.match(
      problems[2]!,
      /no uprobe support .*no-uprobe-type is missing.*CONFIG_UPROBE_EVENTS=y/,
    );
  });
});

Deno.test("preflightProblems() accepts CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON", async (t) => {
  const cases: [string, bigint, boolean][] = [
    ["CAP_SYS_ADMIN", bit(CAP_SYS_ADMIN), true],
    ["CAP_BPF and CAP_PERFMON", bit(CAP_BPF) | bit(CAP_PERFMON), true],
    ["CAP_BPF alone", bit(CAP_BPF), false],
    ["CAP_PERFMON alone", bit(CAP_PERFMON), false],
  ];
  for (const [name, caps, enough] of cases) {
    await t.step(
      name,
      () =>
        withFiles({ status: statusText(caps), btf: "", uprobe: "7\n" }, (dir) => {
          const problems = preflightProblems({
            status: `${dir}/status`,
            btf: `${dir}/btf`,
            uprobe: `${dir}/uprobe`,
          });
          assert.deepEqual(problems.length === 0, enough, problems.join("\n"));
        }),
    );
  }
});

Deno.test({
  name: "preflightProblems() finds nothing wrong on this machine as root (root)",
  ignore: !IS_ROOT,
  fn: () => assert.deepEqual(preflightProblems(SYSTEM_PATHS), []),
});

// The real agent as user nobody with no capabilities. Deno as nobody cannot read the npm cache
// under /root/.cache/deno (/root is 0700), so the test bundles main.ts (deno bundle works
// offline) into a temporary directory nobody can read, with a DENO_DIR nobody owns.
Deno.test({
  name: "the agent started without root exits 2 saying it needs CAP_BPF or root (root)",
  ignore: !IS_ROOT || !hasSetpriv(),
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "ebpfmonitor-nobody-" });
    try {
      await Deno.chmod(dir, 0o755);
      const bundled = await new Deno.Command(Deno.execPath(), {
        args: ["bundle", "--platform", "deno", "-o", `${dir}/ebpfmonitor.js`, MAIN],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(bundled.success, new TextDecoder().decode(bundled.stderr));
      await Deno.mkdir(`${dir}/deno_dir`);
      await Deno.chown(`${dir}/deno_dir`, 65534, 65534);
      const run = await new Deno.Command("setpriv", {
        args: [
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          "--inh-caps=-all",
          Deno.execPath(),
          "run",
          "-A",
          "--no-config",
          `${dir}/ebpfmonitor.js`,
          "agent",
          "--listen",
          "tcp://127.0.0.1:0",
          "--insecure",
        ],
        cwd: dir,
        env: { DENO_DIR: `${dir}/deno_dir`, HOME: `${dir}/deno_dir`, NO_COLOR: "1" },
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(run.stderr);
      assert.equal(run.code, 2, stderr);
      assert.match(stderr, /ebpfmonitor agent: The agent needs root \(CAP_BPF and CAP_PERFMON/);
      assert.doesNotMatch(new TextDecoder().decode(run.stdout), /listening on/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
