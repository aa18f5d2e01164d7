/**
 * ebpfmonitor: safe, fast intrusion detection for VMs whose memory the host
 * cannot read. One program, two roles: `agent` inside the guest, `ids` outside.
 *
 * ```sh
 * deno run -A main.ts agent --listen tcp://0.0.0.0:7070     # in the guest, as root
 * deno run -A main.ts ids ps --connect tcp://GUEST:7070     # on the host
 * deno run -A main.ts demo                                  # both, on this machine
 * ```
 *
 * @module
 */
import { Command } from "commander";
import { runAgent } from "./agent.ts";
import { fetchOption, positiveInt, positiveIntList } from "./ids/cli/options.ts";
import { runProgram } from "./ids/cli/run.ts";
import { bench } from "./ids/cli/bench.ts";
import { demo } from "./ids/cli/demo.ts";
import { lsmod } from "./ids/cli/lsmod.ts";
import { ps } from "./ids/cli/ps.ts";
import { sockets } from "./ids/cli/sockets.ts";
import { keygen } from "./ids/cli/keygen.ts";
import { attest } from "./ids/cli/attest.ts";
import { ping } from "./ids/cli/ping.ts";
import { check } from "./ids/cli/check.ts";
import { durationOption, watch } from "./ids/cli/watch.ts";
import { limitsOption } from "./ids/cli/session.ts";

const connectHelp = "agent URL (tcp://host:port or vsock://cid:port); default: start an agent here";

/** The options every ids command takes to reach and authenticate its agent. */
function withConnectOptions(command: Command): Command {
  return command
    .option("--connect <url>", connectHelp)
    .option("--key <file>", "the IDS's private key (from keygen: DIR/id)")
    .option("--agent-key <file>", "the agent's public key (its id.pub), pinned")
    .option("--insecure", "plaintext, unauthenticated channel (test set-ups only)", false)
    .addOption(limitsOption());
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Builds the command line; each action resolves to an exit code. */
export function program(setExit: (code: number) => void): Command {
  const root = new Command("ebpfmonitor")
    .description("Intrusion detection for VMs through an in-guest eBPF agent")
    .version("0.1.0");

  root.command("agent")
    .description("run the agent (inside the guest, as root)")
    .option("--listen <url>", "where to listen", "tcp://127.0.0.1:7070")
    .option("--key <file>", "the agent's private key (from keygen: DIR/id)")
    .option("--trust <file>", "a trusted IDS public key file (repeatable)", collect, [])
    .option("--insecure", "plaintext, unauthenticated channel (test set-ups only)", false)
    .option("--insecure-anywhere", "allow --insecure on a non-loopback address", false)
    .option("-v, --verbose", "log connections to stderr", false)
    .action(async (o) => setExit(await runAgent(o)));

  root.command("keygen")
    .description("write a key pair: DIR/id (private, mode 0600) and DIR/id.pub")
    .requiredOption("--out <dir>", "where to write the keys")
    .option("--comment <text>", "a comment stored with the public key", "")
    .action(async (o) => setExit(await keygen(o)));

  const ids = root.command("ids").description("the IDS: inspect a guest through its agent");

  withConnectOptions(ids.command("ps"))
    .description("list the guest's processes from the kernel's task list")
    .addOption(fetchOption())
    .option("--limit <n>", "list only the n lowest pids", positiveInt)
    .option("--json", "print JSON", false)
    .action(async (o) => setExit(await ps(o)));

  withConnectOptions(ids.command("lsmod"))
    .description("list the guest's kernel modules from the kernel's module list")
    .addOption(fetchOption())
    .option("--json", "print JSON", false)
    .action(async (o) => setExit(await lsmod(o)));

  withConnectOptions(ids.command("check"))
    .description(
      "check the guest for rootkits and policy violations (exit 0 clean, 1 alerts, 2 error)",
    )
    .option("--policy <file>", "policy file (JSON: allowed processes, modules, listening ports)")
    .option("--baseline <file>", "report what is new since this baseline")
    .option("--save-baseline <file>", "write the guest's baseline to this file instead of checking")
    .addOption(fetchOption())
    .option("--json", "print JSON", false)
    .action(async (o) => setExit(await check(o)));

  withConnectOptions(ids.command("watch"))
    .description("check guests continuously: alerts as JSON lines, until SIGINT or SIGTERM")
    .option("--config <file>", "watch the VMs this JSON file lists (see README: ids watch)")
    .option("--name <name>", "the guest's name in alerts and metrics (default: its URL)")
    .option("--policy <file>", "policy file (JSON: allowed processes, modules, listening ports)")
    .option("--baseline <file>", "report what is new since this baseline")
    .addOption(durationOption("--interval <duration>", "time between checks: 500ms, 5s, 1m", "5s"))
    .addOption(
      durationOption("--timeout <duration>", "deadline of one check (default: max(interval, 30s))"),
    )
    .option("--out <file>", "append alert lines to this file (default: stdout)")
    .option("--metrics <host:port>", "serve Prometheus metrics at http://host:port/metrics")
    .addOption(fetchOption())
    .action(async (o) => setExit(await watch(o)));

  withConnectOptions(ids.command("sockets"))
    .description("list the guest's TCP and UDP sockets from the kernel's socket hash tables")
    .addOption(fetchOption())
    .option(
      "--all-namespaces",
      "every network namespace sharing the tables, each socket with its netns",
      false,
    )
    .option("--unix", "the Unix-domain sockets instead, as /proc/net/unix lists them", false)
    .option("--json", "print JSON", false)
    .action(async (o) => setExit(await sockets(o)));

  withConnectOptions(ids.command("bench"))
    .description("compare fetch modes: acquire processes and modules, repeated")
    .option("--procs <n>", "processes to acquire", positiveInt, 100)
    .option("--repeat <n>", "measured repetitions per mode", positiveInt, 20)
    .option(
      "--scales <list>",
      "larger process counts to measure too, comma-separated (empty: none)",
      positiveIntList,
      [1_000, 10_000],
    )
    .option("--plot <file.svg>", "write a chart of time per mode against process count")
    .option("--json", "print JSON", false)
    .action(async (o) => setExit(await bench(o)));

  withConnectOptions(ids.command("ping"))
    .description("time the round trip of an empty request")
    .option("--count <n>", "pings to send", positiveInt, 100)
    .option("--json", "print JSON", false)
    .action(async (o) => setExit(await ping(o)));

  withConnectOptions(ids.command("attest"))
    .description("verify the agent's SEV-SNP attestation report (in an SEV-SNP guest)")
    .requiredOption("--vcek <file>", "the chip's VCEK certificate or public key (PEM or DER)")
    .option(
      "--chain <file>",
      "the ASK and ARK certificates (PEM): check that the VCEK chains to them",
    )
    .option("--measurement <hex>", "the expected launch measurement (48 bytes, hex)")
    .option("--json", "print JSON", false)
    .action(async (o) => setExit(await attest(o)));

  root.command("demo")
    .description("start an agent on this machine and show what the IDS sees")
    .action(async () => setExit(await demo()));

  return root;
}

if (import.meta.main) await runProgram("ebpfmonitor", program);
