/**
 * The records that ebpfmonitor's eBPF programs write into their ring buffer,
 * and the parameter header the agent writes in front of the IDS's parameters:
 * the TypeScript side of bpf/common.h. Keep the two in step.
 *
 * @module
 */

/** `struct record_hdr`: kind u32, len u32, addr u64, value s64. */
export const RECORD_HEADER_BYTES = 24;

/** `struct params_hdr`: armed u32, tgid u32, run_id u64. */
export const PARAMS_HEADER_BYTES = 16;

/** `enum record_kind`. */
export const RecordKind = {
  /** addr = page address, payload = the page. */
  Page: 1,
  /** addr = object address, value = an {@linkcode AddrTag}. */
  Addr: 2,
  /** addr = address that failed, value = negative errno or a negative {@linkcode FaultCode}. */
  Fault: 3,
  /** The program paused (ring buffer nearly full): fire again. value = objects so far. */
  More: 4,
  /** The walk is complete. value = objects visited. */
  End: 5,
  /** addr = object, value = a {@linkcode FieldsOf} value, payload = the planned ranges in order. */
  Fields: 6,
  /** addr = a hash bucket's chain head, value = the head pointer (only non-empty chains are sent). */
  Head: 7,
} as const;

/** `enum fields_of`: whose ranges a FIELDS record holds. */
export const FieldsOf = {
  /** The walked object's own ranges. */
  Object: 0,
  /** 1 + i: the ranges of the object that follow i points to. */
  Follow0: 1,
  /** The list head's next pointer (8 bytes), for walks that start at a head. */
  Anchor: 255,
} as const;

/** `enum addr_tag`. */
export const AddrTag = { Start: 1, Task: 2, Module: 3 } as const;

/** Fault codes beyond errno values (`FAULT_*` in common.h), stored negated. */
export const FaultCode = { LoopBound: 1, Cycle: 2, RingFull: 3 } as const;

/** One decoded record; `payload` is a view into the buffer it came from. */
export interface BpfRecord {
  /** A {@linkcode RecordKind} value. */
  kind: number;
  /** The address the record is about. */
  addr: bigint;
  /** Kind-specific value. */
  value: bigint;
  /** The payload (a page for {@linkcode RecordKind.Page}). */
  payload: Uint8Array;
}

/**
 * Decodes the records packed in `bytes` (as the agent streams them).
 * Throws on a record that runs past the end.
 */
export function* decodeRecords(bytes: Uint8Array): Generator<BpfRecord> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  while (offset < bytes.byteLength) {
    if (offset + RECORD_HEADER_BYTES > bytes.byteLength) {
      throw new Error(`Truncated record header at byte ${offset} of ${bytes.byteLength}`);
    }
    const kind = view.getUint32(offset, true);
    const len = view.getUint32(offset + 4, true);
    const end = offset + RECORD_HEADER_BYTES + len;
    if (end > bytes.byteLength) {
      throw new Error(`Record of ${len} bytes at byte ${offset} runs past the end of its chunk`);
    }
    yield {
      kind,
      addr: view.getBigUint64(offset + 8, true),
      value: view.getBigInt64(offset + 16, true),
      payload: bytes.subarray(offset + RECORD_HEADER_BYTES, end),
    };
    offset = end;
  }
}
