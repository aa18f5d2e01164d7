// The agent's preflight checks: unit tests over fixture files, and the real agent started as an
// unprivileged user (needs root to drop to nobody with setpriv).
import assert from "node:assert/strict";
import {
  effectiveCapabilities,
  lockdownMode,
  type PreflightPaths,
  preflightProblems,
  preflightWarnings,
  SYSTEM_PATHS,
} from "../../agent/preflight.ts";
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

/** The preflight paths of files in `dir` (status, then the files named). */
function pathsIn(
  dir: string,
  btf: string,
  uprobe: string,
  lockdown: string,
  unprivilegedBpf: string,
): PreflightPaths {
  return {
    status: `${dir}/status`,
    btf: `${dir}/${btf}`,
    uprobe: `${dir}/${uprobe}`,
    lockdown: `${dir}/${lockdown}`,
    unprivilegedBpf: `${dir}/${unprivilegedBpf}`,
  };
}

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
  await withFiles({ status: statusText(0n), unprivileged: "2\n" }, (dir) => {
    const problems = preflightProblems(
      pathsIn(dir, "no-btf", "no-uprobe-type", "no-lockdown", "unprivileged"),
    );
    assert.deepEqual(problems, [
      "The agent needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN) to load eBPF programs: it lacks CAP_BPF and CAP_PERFMON (kernel.unprivileged_bpf_disabled is 2: without CAP_BPF no program loads); run it as root, or give it both capabilities (e.g. setpriv --inh-caps +bpf,+perfmon --ambient-caps +bpf,+perfmon)",
      `This kernel has no BTF (${dir}/no-btf is missing): the agent needs a kernel built with CONFIG_DEBUG_INFO_BTF=y`,
      `This kernel has no uprobe support (${dir}/no-uprobe-type is missing): the agent needs CONFIG_UPROBE_EVENTS=y`,
    ]);
  });
});

Deno.test("preflightProblems() names the one capability missing and what unprivileged_bpf_disabled means", async (t) => {
  const cases: [string, bigint, string | undefined, RegExp][] = [
    [
      "CAP_BPF alone, setting 1",
      bit(CAP_BPF),
      "1\n",
      /it lacks CAP_PERFMON \(kernel\.unprivileged_bpf_disabled is 1: without CAP_BPF no program loads, until the next boot\)/,
    ],
    [
      "CAP_PERFMON alone, setting 0",
      bit(CAP_PERFMON),
      "0\n",
      /it lacks CAP_BPF \(kernel\.unprivileged_bpf_disabled is 0, but the agent's programs read kernel memory, which only CAP_BPF and CAP_PERFMON allow\)/,
    ],
    [
      "no setting",
      0n,
      undefined,
      /it lacks CAP_BPF and CAP_PERFMON \(without CAP_BPF no program that reads kernel memory loads\)/,
    ],
  ];
  for (const [name, caps, setting, expected] of cases) {
    await t.step(name, () => {
      const files: Record<string, string> = { status: statusText(caps), btf: "", uprobe: "7\n" };
      if (setting !== undefined) files.unprivileged = setting;
      return withFiles(files, (dir) => {
        const problems = preflightProblems(
          pathsIn(dir, "btf", "uprobe", "no-lockdown", "unprivileged"),
        );
        assert.equal(problems.length, 1, problems.join("\n"));
        assert.match(problems[0]!, expected);
      });
    });
  }
});

Deno.test("preflightProblems() refuses lockdown=confidentiality only, saying how to boot", async (t) => {
  const cases: [string, string | undefined, boolean][] = [
    ["no lockdown LSM", undefined, true],
    ["none", "[none] integrity confidentiality\n", true],
    ["integrity", "none [integrity] confidentiality\n", true],
    ["confidentiality", "none integrity [confidentiality]\n", false],
  ];
  for (const [name, lockdown, fine] of cases) {
    await t.step(name, () => {
      const files: Record<string, string> = {
        status: statusText(bit(CAP_SYS_ADMIN)),
        btf: "",
        uprobe: "7\n",
      };
      if (lockdown !== undefined) files.lockdown = lockdown;
      return withFiles(files, (dir) => {
        const problems = preflightProblems(
          pathsIn(dir, "btf", "uprobe", "lockdown", "unprivileged"),
        );
        assert.deepEqual(
          problems,
          fine ? [] : [
            "The kernel is locked down for confidentiality (lockdown=confidentiality): it refuses bpf_probe_read_kernel, which every walker needs; boot with lockdown=integrity or none (kernel command line, or the LSM's default)",
          ],
        );
      });
    });
  }
  assert.equal(lockdownMode("none integrity [confidentiality]"), "confidentiality");
  assert.equal(lockdownMode("garbage"), undefined);
});

Deno.test("preflightWarnings() warns of unprivileged eBPF (setting 0) only", async (t) => {
  for (
    const [setting, warned] of [["0\n", true], ["1\n", false], ["2\n", false], [
      undefined,
      false,
    ]] as const
  ) {
    await t.step(`setting ${setting?.trim() ?? "absent"}`, () => {
      const files: Record<string, string> = { status: statusText(bit(CAP_SYS_ADMIN)) };
      if (setting !== undefined) files.unprivileged = setting;
      return withFiles(files, (dir) => {
        assert.deepEqual(
          preflightWarnings(pathsIn(dir, "btf", "uprobe", "lockdown", "unprivileged")),
          warned
            ? [
              "kernel.unprivileged_bpf_disabled is 0: any user of this guest may load eBPF programs; set it to 2 (sysctl -w kernel.unprivileged_bpf_disabled=2) unless something needs it",
            ]
            : [],
        );
      });
    });
  }
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
          const problems = preflightProblems(
            pathsIn(dir, "btf", "uprobe", "no-lockdown", "no-setting"),
          );
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
