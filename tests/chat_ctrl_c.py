#!/usr/bin/env python3
"""llama-cli chat under a pseudo-terminal: Ctrl-C (SIGINT) while a reply streams stops that reply, not
the program; the next prompt appears and /exit quits with status 0. Usage: chat_ctrl_c.py LLAMA_CLI"""
import os
import pty
import select
import signal
import sys
import time

cli = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.execv(cli, [cli, "chat", "--max-tokens", "100000", "--ignore-eos", "--seed", "1", "--threads", "1"])

out = b""


def read_until(pred, timeout):
    global out
    end = time.time() + timeout
    while time.time() < end and not pred():
        r, _, _ = select.select([fd], [], [], 0.02)
        if r:
            try:
                out += os.read(fd, 65536)
            except OSError:
                return


read_until(lambda: b"> " in out, 20)  # the first prompt
os.write(fd, b"Tell me of Moses\n")
mark = len(out)
read_until(lambda: len(out) > mark + 40, 20)  # the reply is streaming
os.kill(pid, signal.SIGINT)
read_until(lambda: b"finish" in out[mark:] and out.rstrip().endswith(b">"), 20)
os.write(fd, b"/exit\n")
read_until(lambda: False, 2)
_, status = os.waitpid(pid, 0)
text = out.decode(errors="replace")
ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and "finish cancelled" in text
print(text[-600:])
print("1 passed, 0 failed" if ok else "0 passed, 1 failed")
sys.exit(0 if ok else 1)
