/**
 * A small binding of libbpf (libbpf.so.1) through Deno FFI: open and load an
 * object, find its program and maps, attach a uprobe, update a map, drain a
 * ring buffer, close. Every failure is a {@linkcode LibbpfError} naming the call
 * and the errno, with libbpf's own last log lines (the verifier's among them).
 *
 * @module
 */

const LIBBPF_PATHS = ["libbpf.so.1", "/usr/lib/x86_64-linux-gnu/libbpf.so.1", "/lib64/libbpf.so.1"];

const SYMBOLS = {
  libbpf_set_print: { parameters: ["function"], result: "pointer" },
  libbpf_get_error: { parameters: ["pointer"], result: "i64" },
  libbpf_strerror: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  bpf_object__open_mem: { parameters: ["buffer", "usize", "pointer"], result: "pointer" },
  bpf_object__load: { parameters: ["pointer"], result: "i32" },
  bpf_object__close: { parameters: ["pointer"], result: "void" },
  bpf_object__next_program: { parameters: ["pointer", "pointer"], result: "pointer" },
  bpf_object__find_map_by_name: { parameters: ["pointer", "buffer"], result: "pointer" },
  bpf_program__name: { parameters: ["pointer"], result: "pointer" },
  bpf_program__attach_uprobe_opts: {
    parameters: ["pointer", "i32", "buffer", "usize", "buffer"],
    result: "pointer",
  },
  bpf_link__destroy: { parameters: ["pointer"], result: "i32" },
  bpf_map__fd: { parameters: ["pointer"], result: "i32" },
  bpf_map__value_size: { parameters: ["pointer"], result: "u32" },
  bpf_map_update_elem: { parameters: ["i32", "buffer", "buffer", "u64"], result: "i32" },
  ring_buffer__new: { parameters: ["i32", "function", "pointer", "pointer"], result: "pointer" },
  ring_buffer__consume: { parameters: ["pointer"], result: "i32" },
  ring_buffer__free: { parameters: ["pointer"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

const LIBC_SYMBOLS = {
  vsnprintf: { parameters: ["buffer", "usize", "pointer", "pointer"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** A libbpf call failed. */
export class LibbpfError extends Error {
  /** The positive errno libbpf reported (0 when unknown). */
  readonly errno: number;
  /** The call that failed, as named in the message. */
  readonly call: string;
  /** @param call the libbpf function @param errno positive errno @param detail extra text */
  constructor(call: string, errno: number, detail = "") {
    super(`${call} failed: ${describeErrno(errno)}${detail ? `\n${detail}` : ""}`);
    this.name = "LibbpfError";
    this.errno = errno;
    this.call = call;
  }
}

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];

let lib: Lib | undefined;
let libc: Libc | undefined;
const logLines: string[] = [];
const LOG_KEEP = 40;

/** libbpf's own error codes start here (LIBBPF_ERRNO__START); below are system errnos. */
const LIBBPF_ERRNO_START = 4000;

function describeErrno(errno: number): string {
  if (errno === 0 || libc === undefined || lib === undefined) return `errno ${errno}`;
  if (errno >= LIBBPF_ERRNO_START) {
    const buffer = new Uint8Array(256);
    lib.libbpf_strerror(errno, buffer, BigInt(buffer.length));
    const end = buffer.indexOf(0);
    return `${
      new TextDecoder().decode(buffer.subarray(0, end < 0 ? undefined : end))
    } (libbpf error ${errno})`;
  }
  const text = libc.strerror(errno);
  return `${text ? Deno.UnsafePointerView.getCString(text) : "unknown error"} (errno ${errno})`;
}

/**
 * Opens libbpf.so.1 once. Throws an Error saying how to install it when it is missing.
 */
export function openLibbpf(): Lib {
  if (lib !== undefined) return lib;
  const failures: string[] = [];
  for (const path of LIBBPF_PATHS) {
    try {
      lib = Deno.dlopen(path, SYMBOLS).symbols;
      break;
    } catch (error) {
      failures.push(error instanceof Error ? error.message : String(error));
    }
  }
  if (lib === undefined) {
    throw new Error(
      `Cannot load libbpf.so.1: install libbpf1 (apt-get install libbpf1): ${failures[0]}`,
    );
  }
  libc = Deno.dlopen("libc.so.6", LIBC_SYMBOLS).symbols;
  installPrinter(lib, libc);
  return lib;
}

/** libbpf's recent log lines (warnings and the verifier's log), oldest first. */
export function libbpfLog(): string[] {
  return [...logLines];
}

const PRINT_FN = { parameters: ["i32", "pointer", "pointer"], result: "i32" } as const;
let printer: Deno.UnsafeCallback<typeof PRINT_FN> | undefined;

function installPrinter(l: Lib, c: Libc): void {
  const buffer = new Uint8Array(8192);
  // libbpf_print_fn_t is int (*)(enum libbpf_print_level, const char *, va_list):
  // on x86-64 a va_list argument is a pointer, which vsnprintf takes as it is.
  printer = new Deno.UnsafeCallback(
    PRINT_FN,
    (level, format, args) => {
      if (level > 1 || format === null) return 0; // keep warnings and info, not debug
      const n = c.vsnprintf(buffer, BigInt(buffer.length), format, args);
      const text = new TextDecoder().decode(buffer.subarray(0, Math.min(Math.max(n, 0), 8191)));
      for (const line of text.split("\n")) {
        if (line.trim() === "") continue;
        logLines.push(line);
        if (logLines.length > LOG_KEEP) logLines.shift();
      }
      return 0;
    },
  );
  l.libbpf_set_print(printer.pointer);
}

function lastErrno(l: Lib): number {
  return Math.abs(Number(l.libbpf_get_error(null)));
}

function cString(text: string): Uint8Array {
  return new TextEncoder().encode(`${text}\0`);
}

/** Runs `body` with the log cleared and adds libbpf's lines to an error it throws. */
function withLog<T>(call: string, body: (l: Lib) => T): T {
  const l = openLibbpf();
  logLines.length = 0;
  try {
    return body(l);
  } catch (error) {
    if (error instanceof LibbpfError && logLines.length > 0) {
      // Keep the libbpf function that failed in the message, after the step it belongs to.
      throw new LibbpfError(`${call}: ${error.call}`, error.errno, logLines.join("\n"));
    }
    throw error;
  }
}

/** A map of a loaded object. */
export interface BpfMap {
  /** The map's file descriptor. */
  readonly fd: number;
  /** Bytes of one value. */
  readonly valueSize: number;
}

/** A loaded eBPF object with exactly one program (the ebpfmonitor convention). */
export class BpfObject {
  #obj: Deno.PointerObject | null;
  readonly #program: Deno.PointerObject;
  /** The name of the object's program. */
  readonly programName: string;

  private constructor(obj: Deno.PointerObject, program: Deno.PointerObject, name: string) {
    this.#obj = obj;
    this.#program = program;
    this.programName = name;
  }

  /**
   * Opens ELF bytes and loads them into the kernel (CO-RE relocation against
   * the running kernel's BTF, then the verifier).
   */
  static load(name: string, elf: Uint8Array): BpfObject {
    return withLog(`load eBPF object ${name}`, (l) => {
      const obj = l.bpf_object__open_mem(elf, BigInt(elf.byteLength), null);
      if (obj === null) throw new LibbpfError(`bpf_object__open_mem(${name})`, lastErrno(l));
      const program = l.bpf_object__next_program(obj, null);
      if (program === null || l.bpf_object__next_program(obj, program) !== null) {
        l.bpf_object__close(obj);
        throw new Error(`eBPF object ${name} must hold exactly one program`);
      }
      const err = l.bpf_object__load(obj);
      if (err < 0) {
        l.bpf_object__close(obj);
        throw new LibbpfError(`bpf_object__load(${name})`, -err);
      }
      const namePtr = l.bpf_program__name(program);
      const programName = namePtr ? Deno.UnsafePointerView.getCString(namePtr) : name;
      return new BpfObject(obj, program, programName);
    });
  }

  /** Finds a map by name; throws when the object has none of that name. */
  map(name: string): BpfMap {
    const l = openLibbpf();
    const map = l.bpf_object__find_map_by_name(this.#live(), cString(name));
    if (map === null) {
      throw new Error(`eBPF object ${this.programName} has no map named ${name}`);
    }
    return { fd: l.bpf_map__fd(map), valueSize: l.bpf_map__value_size(map) };
  }

  /**
   * Attaches the program to the entry of `func` in the library or binary at
   * `path`, for process `pid` only. Returns the link; destroy it to detach.
   */
  attachUprobe(pid: number, path: string, func: string): BpfLink {
    return withLog(`attach uprobe to ${func} in ${path}`, (l) => {
      // struct bpf_uprobe_opts (libbpf 1.x): sz, ref_ctr_offset, bpf_cookie, retprobe,
      // func_name; sz tells libbpf which fields this caller knows.
      const opts = new Uint8Array(40);
      const view = new DataView(opts.buffer);
      const funcName = cString(func);
      view.setBigUint64(0, 40n, true);
      view.setBigUint64(
        32,
        BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(funcName))),
        true,
      );
      const link = l.bpf_program__attach_uprobe_opts(this.#program, pid, cString(path), 0n, opts);
      if (link === null) {
        throw new LibbpfError(`Cannot attach uprobe to ${func} in ${path}`, lastErrno(l));
      }
      return new BpfLink(link);
    });
  }

  /** Unloads the object (its program and maps). Idempotent. */
  close(): void {
    if (this.#obj === null) return;
    openLibbpf().bpf_object__close(this.#obj);
    this.#obj = null;
  }

  #live(): Deno.PointerObject {
    if (this.#obj === null) throw new Error(`eBPF object ${this.programName} is closed`);
    return this.#obj;
  }
}

/** An attachment of a program; destroying it detaches the program. */
export class BpfLink {
  #link: Deno.PointerObject | null;

  /** @param link the libbpf link pointer */
  constructor(link: Deno.PointerObject) {
    this.#link = link;
  }

  /** Detaches. Idempotent. */
  destroy(): void {
    if (this.#link === null) return;
    openLibbpf().bpf_link__destroy(this.#link);
    this.#link = null;
  }
}

/** Writes `value` (exactly the map's value size) at `key` of an array or hash map. */
export function updateElem(map: BpfMap, key: Uint8Array, value: Uint8Array): void {
  if (value.byteLength !== map.valueSize) {
    throw new Error(`Map value must be ${map.valueSize} bytes, not ${value.byteLength}`);
  }
  const l = openLibbpf();
  const err = l.bpf_map_update_elem(map.fd, key, value, 0n);
  if (err < 0) throw new LibbpfError("bpf_map_update_elem", -err);
}

/**
 * A consumer of a BPF ring buffer map. `consume()` calls `onRecord` for every
 * record available now, synchronously; the bytes are only valid during the call.
 */
const SAMPLE_FN = { parameters: ["pointer", "pointer", "usize"], result: "i32" } as const;

export class RingBuffer {
  #rb: Deno.PointerObject | null;
  readonly #callback: Deno.UnsafeCallback<typeof SAMPLE_FN>;

  /** @param map the ring buffer map @param onRecord called with each record's bytes */
  constructor(map: BpfMap, onRecord: (data: Deno.PointerObject, size: number) => void) {
    const l = openLibbpf();
    this.#callback = new Deno.UnsafeCallback(
      SAMPLE_FN,
      (_ctx, data, size) => {
        if (data !== null) onRecord(data, Number(size));
        return 0;
      },
    );
    const rb = l.ring_buffer__new(map.fd, this.#callback.pointer, null, null);
    if (rb === null) {
      this.#callback.close();
      throw new LibbpfError("ring_buffer__new", lastErrno(l));
    }
    this.#rb = rb;
  }

  /** Drains all available records; returns how many were consumed. */
  consume(): number {
    if (this.#rb === null) throw new Error("Ring buffer is closed");
    const n = openLibbpf().ring_buffer__consume(this.#rb);
    if (n < 0) throw new LibbpfError("ring_buffer__consume", -n);
    return n;
  }

  /** Frees the consumer. Idempotent. */
  close(): void {
    if (this.#rb === null) return;
    openLibbpf().ring_buffer__free(this.#rb);
    this.#rb = null;
    this.#callback.close();
  }
}
