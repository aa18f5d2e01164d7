/**
 * `deno task vm`: one guest by hand.
 *
 * ```sh
 * deno task vm build [--kernel 5.10|6.1|6.12]     # build (or find) the images
 * deno task vm ps --kernel 6.12 [--fetch page] [--json]   # = ids ps against a fresh guest
 * deno task vm lsmod --kernel 6.1 [--json]        # = ids lsmod
 * deno task vm sockets --kernel 5.10 [--json]     # = ids sockets
 * deno task vm check --kernel 6.12 [--json]       # = ids check
 * deno task vm bench --kernel 6.1 [--json]        # = ids bench, with 100 extra sleepers
 * deno task vm shell --kernel 6.1                 # keep a guest up until Ctrl-C
 * ```
 *
 * The guest's console goes to stderr with `--console`; progress lines go to
 * stderr; stdout holds only the command's own output.
 *
 * @module
 */
import { Command, InvalidArgumentError, Option } from "commander";
import { fetchOption, positiveInt, positiveIntList } from "../../ids/cli/options.ts";
import { runProgram } from "../../ids/cli/run.ts";
import { bench } from "../../ids/cli/bench.ts";
import { check } from "../../ids/cli/check.ts";
import type { FetchMode } from "../../ids/guest.ts";
import { lsmod } from "../../ids/cli/lsmod.ts";
import { ps } from "../../ids/cli/ps.ts";
import { sockets } from "../../ids/cli/sockets.ts";
import { buildImage, type KernelName, KERNELS, parseKernel } from "./image.ts";
import { Vm, type VmOptions } from "./qemu.ts";
import { bedConnectOptions, cliSecurityArgs } from "./session.ts";

function kernelOption(): Option {
  return new Option("--kernel <version>", `guest kernel: ${KERNELS.join(" or ")}`)
    .default("6.1")
    .argParser((text) => {
      try {
        return parseKernel(text);
      } catch (error) {
        throw new InvalidArgumentError((error as Error).message);
      }
    });
}

/** The options of an `ids` command aimed at `vm`'s agent, with the bed's keys. */
async function cliOptions<T extends object>(vm: Vm, options: T): Promise<T & { connect: string }> {
  return { ...await bedConnectOptions(), ...options, connect: vm.url };
}

/** Builds the image, boots it, runs `body` with the guest, and stops it on every path. */
async function withVm(
  kernel: KernelName,
  options: VmOptions & { console?: boolean },
  body: (vm: Vm) => Promise<number>,
): Promise<number> {
  const image = await buildImage(kernel);
  console.error(`vm: booting ${image.package} (${image.release})`);
  await using vm = await Vm.start(image, {
    ...options,
    onConsole: options.console ? (line) => console.error(`  | ${line}`) : undefined,
  });
  console.error(
    `vm: agent ready at ${vm.url} after ${(vm.bootMs / 1000).toFixed(1)} s (pid ${vm.pid})`,
  );
  return await body(vm);
}

function program(setExit: (code: number) => void): Command {
  const root = new Command("vm")
    .description("the VM test bed: Debian guests under QEMU (TCG) running the agent");

  root.command("build")
    .description("build (or find in .cache/vm) the guest images")
    .addOption(kernelOption().default(undefined, "all"))
    .action(async (o: { kernel?: KernelName }) => {
      for (const kernel of o.kernel ? [o.kernel] : KERNELS) {
        const image = await buildImage(kernel);
        console.log(`${kernel}: ${image.package} ${image.initrd}`);
      }
      setExit(0);
    });

  /** A command that boots a guest and runs one `ids` view against it (kernel, fetch, json). */
  const viewCommand = (name: string, description: string) =>
    root.command(name)
      .description(description)
      .addOption(kernelOption())
      .addOption(fetchOption())
      .option("--json", "print JSON", false)
      .option("--console", "copy the guest's console to stderr", false);
  const viewOptions = async (vm: Vm, o: { fetch: FetchMode; json: boolean }) =>
    await cliOptions(vm, { fetch: o.fetch, json: o.json });

  viewCommand("ps", "boot a guest, print the IDS's process list (as `ids ps`), stop it")
    .action(async (o) =>
      setExit(await withVm(o.kernel, o, async (vm) => ps(await viewOptions(vm, o))))
    );

  viewCommand("lsmod", "boot a guest, print the IDS's module list (as `ids lsmod`), stop it")
    .action(async (o) =>
      setExit(await withVm(o.kernel, o, async (vm) => lsmod(await viewOptions(vm, o))))
    );

  viewCommand("sockets", "boot a guest, print the IDS's socket list (as `ids sockets`), stop it")
    .option("--all-namespaces", "also the sockets of other network namespaces", false)
    .action(async (o) =>
      setExit(
        await withVm(o.kernel, o, async (vm) =>
          sockets({ ...await viewOptions(vm, o), allNamespaces: o.allNamespaces })),
      )
    );

  viewCommand("check", "boot a guest, run `ids check` against it, stop it")
    .option("--policy <file>", "policy file")
    .action(async (o) =>
      setExit(
        await withVm(o.kernel, o, async (vm) =>
          check({ ...await viewOptions(vm, o), policy: o.policy })),
      )
    );

  root.command("bench")
    .description("boot a guest with extra sleepers and run `ids bench` against it")
    .addOption(kernelOption())
    .option("--procs <n>", "processes to acquire", positiveInt, 100)
    .option("--repeat <n>", "measured repetitions per mode", positiveInt, 20)
    .option(
      "--scales <list>",
      "larger process counts to measure too, comma-separated",
      positiveIntList,
      [1_000],
    )
    .option("--plot <file.svg>", "write a chart of time per mode against process count")
    .option("--json", "print JSON", false)
    .option("--console", "copy the guest's console to stderr", false)
    .action(async (o) =>
      setExit(
        await withVm(
          o.kernel,
          { ...o, sleepers: Math.max(o.procs, ...o.scales) },
          async (vm) =>
            bench(
              await cliOptions(vm, {
                procs: o.procs,
                repeat: o.repeat,
                scales: o.scales,
                plot: o.plot,
                json: o.json,
              }),
            ),
        ),
      )
    );

  root.command("boot")
    .description("measure boot to agent-ready: QEMU start, guest kernel + /init, Deno start")
    .addOption(kernelOption())
    .option("--runs <n>", "boots to measure", positiveInt, 3)
    .option("--cpus <n>", "virtual CPUs", positiveInt, 1)
    .option("--memory <mib>", "guest memory, MiB", positiveInt, 1024)
    .option("--v8-flags <flags>", "V8 flags for the guest's Deno")
    .option("--append <text>", "extra kernel command line")
    .action(async (o) => {
      const image = await buildImage(o.kernel);
      for (let run = 1; run <= o.runs; run++) {
        let agentStart = NaN;
        await using vm = await Vm.start(image, {
          cpus: o.cpus,
          memoryMiB: o.memory,
          v8Flags: o.v8Flags,
          append: o.append,
          readyTimeoutMs: 120_000,
          onConsole: (line) => {
            const m = /uptime ([\d.]+) s: starting the agent/.exec(line);
            if (m) agentStart = Number(m[1]);
          },
        });
        const uptime = Number((await vm.run("cut -d' ' -f1 /proc/uptime")).output.trim());
        console.log(
          `${image.release} run ${run}: agent ready ${(vm.bootMs / 1000).toFixed(1)} s ` +
            `after QEMU's start; in the guest: kernel + /init ${agentStart.toFixed(1)} s, ` +
            `Deno to listening ≤ ${(uptime - agentStart).toFixed(1)} s`,
        );
      }
      setExit(0);
    });

  root.command("shell")
    .description("boot a guest and keep it running, agent URL printed, until Ctrl-C")
    .addOption(kernelOption())
    .option("--sleepers <n>", "extra idle processes in the guest", positiveInt)
    .option("--console", "copy the guest's console to stderr", false)
    .action(async (o) =>
      setExit(
        await withVm(o.kernel, o, async (vm) => {
          console.log(vm.url);
          const keys = await cliSecurityArgs();
          console.error(
            `vm: try  deno run -A main.ts ids ps --connect ${vm.url} ${keys.join(" ")}\n` +
              "vm: Ctrl-C stops the guest",
          );
          await new Promise<void>((resolve) => {
            const stop = () => {
              Deno.removeSignalListener("SIGINT", stop);
              Deno.removeSignalListener("SIGTERM", stop);
              resolve();
            };
            Deno.addSignalListener("SIGINT", stop);
            Deno.addSignalListener("SIGTERM", stop);
          });
          return 0;
        }),
      )
    );
  return root;
}

if (import.meta.main) await runProgram("vm", program);
