import assert from "node:assert/strict";
import { viewJson, viewTable } from "../../../ids/cli/view_command.ts";
import { moduleOutput } from "../../../ids/os/module_view.ts";
import { processOutput } from "../../../ids/os/process_view.ts";
import { socketOutput } from "../../../ids/os/socket_view.ts";
import { unixSocketOutput } from "../../../ids/os/unix_sockets.ts";
import type { NamespacedSocketInfo, SocketInfo } from "../../../ids/os/sockets.ts";
import { SOCKET_JSON_KEYS } from "../../_helpers/proc_net.ts";

const SOCKET: SocketInfo = {
  proto: "tcp",
  family: "inet6",
  local_addr: "::1",
  local_port: 7070,
  remote_addr: "::",
  remote_port: 0,
  state: "LISTEN",
  uid: 0,
  inode: 4242,
};

Deno.test("viewTable() prints a view's columns, right-aligning its numbers", () => {
  const table = viewTable(processOutput, [{
    pid: 1,
    tgid: 1,
    ppid: 0,
    comm: "init",
    uid: 0,
    euid: 0,
    gid: 0,
    state: "S",
    kthread: false,
    addr: 0xffff888000001000n,
  }, {
    pid: 12345,
    tgid: 12345,
    ppid: 1,
    comm: "kworker/0:1",
    uid: 0,
    euid: 0,
    gid: 0,
    state: "I",
    kthread: true,
    addr: 0xffff888000002000n,
  }]);
  assert.equal(
    table,
    [
      "  PID  PPID  UID  EUID  GID  S  KTHREAD  COMM         TASK",
      "    1     0    0     0    0  S           init         0xffff888000001000",
      "12345     1    0     0    0  I  yes      kworker/0:1  0xffff888000002000",
    ].join("\n"),
  );
});

Deno.test("viewTable() shows the NETNS column only when a socket has a namespace", () => {
  assert.equal(
    viewTable(socketOutput, [SOCKET]),
    [
      "PROTO  LOCAL       REMOTE  STATE   UID  INODE",
      "tcp6   [::1]:7070  [::]:0  LISTEN    0   4242",
    ].join("\n"),
  );
  const namespaced: NamespacedSocketInfo = { ...SOCKET, netns: 4026531840 };
  assert.match(viewTable(socketOutput, [namespaced]).split("\n")[0]!, / NETNS$/);
  assert.doesNotMatch(viewTable(socketOutput, []), /NETNS/);
});

Deno.test("viewJson() prints each item as its view declares it", () => {
  assert.deepEqual(
    JSON.parse(viewJson(moduleOutput, [{
      name: "ext4",
      base: 0xffffffffc0000000n,
      size: 4096,
      state: "Live",
      addr: 0xffffffffc0100000n,
    }])),
    [{ name: "ext4", base: "0xffffffffc0000000", size: 4096, state: "Live" }],
  );
  assert.deepEqual(Object.keys(JSON.parse(viewJson(socketOutput, [SOCKET]))[0]), SOCKET_JSON_KEYS);
  const unix = {
    proto: "unix" as const,
    type: "stream",
    state: "LISTEN",
    path: "@x",
    inode: 7,
    peer_inode: 0,
  };
  assert.equal(viewJson(unixSocketOutput, [unix]), JSON.stringify([unix], null, 2));
});
